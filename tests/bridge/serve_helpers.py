"""A real `n2m serve` process for the bridge tests: started on a free loopback port, its output
collected, killed with -9 or stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Serve:
    """`model` None: the shipped default; `threads` None: the daemon's own count (as a producer runs it)."""

    model: Path | None
    out: Path
    library: Path
    threads: int | None = 1
    proc: subprocess.Popen | None = None
    port: int = 0
    lines: list[str] = field(default_factory=list)

    def start(self, timeout: float = 180.0) -> Serve:
        cmd = [sys.executable, "-m", "n2m.bridge.cli", "serve", "--port", "0", "--out", str(self.out),
               "--library", str(self.library), "--grace", "1"]
        cmd += ["--model", str(self.model)] if self.model is not None else []
        cmd += ["--threads", str(self.threads)] if self.threads is not None else []
        self.port, self.lines = 0, []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        ready = threading.Event()

        def pump(p: subprocess.Popen) -> None:
            for line in p.stdout:
                self.lines.append(line.rstrip())
                if m := re.search(r"listening on \S+ [\d.]+:(\d+)", line):
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=pump, args=(self.proc,), daemon=True).start()
        ready.wait(timeout)
        if not self.port:
            raise RuntimeError("n2m serve did not start:\n" + "\n".join(self.lines))
        return self

    def resources(self) -> dict[str, int]:
        pid = self.proc.pid
        status = Path(f"/proc/{pid}/status").read_text()
        return {"fds": len(os.listdir(f"/proc/{pid}/fd")),
                "threads": int(re.search(r"Threads:\s+(\d+)", status).group(1)),
                "rss_kib": int(re.search(r"VmRSS:\s+(\d+)", status).group(1))}

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode
