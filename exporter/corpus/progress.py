"""A small terminal progress bar with rate and ETA (stderr; one line, redrawn)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: float, unit: str = "", label: str = "", quiet: bool = False,
                 stream=None) -> None:
        self.total = max(float(total), 1e-9)
        self.done = 0.0
        self.unit = unit
        self.label = label
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self._last = 0.0
        if not quiet and label:
            print(label, file=self.stream)

    def update(self, amount: float) -> None:
        self.done += amount
        now = time.perf_counter()
        if not self.quiet and (now - self._last > 0.25 or self.done >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = min(1.0, self.done / self.total)
        el = now - self.t0
        rate = self.done / el if el > 0 else 0.0
        eta = max(0.0, self.total - self.done) / rate if rate > 0 else float("inf")
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        eta_s = f"{eta:5.0f}s" if eta != float("inf") else "    ?"
        self.stream.write(f"\r[{bar}] {100 * frac:5.1f}% {self.done:.0f}/{max(self.total, self.done):.0f} {self.unit} "
                          f"{rate:.1f}/s ETA {eta_s} ")
        self.stream.flush()

    def close(self) -> None:
        if not self.quiet:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()
