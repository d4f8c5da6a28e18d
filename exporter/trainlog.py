"""A training run's log: the terminal progress line, log.jsonl summarised and plotted, and
spectrogram pictures for previews."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np


class Progress:
    """A terminal bar (tqdm) when attached to a TTY, else one line per log interval."""

    def __init__(self, total: int, start: int) -> None:
        self.tty = sys.stderr.isatty()
        self.total, self.start = total, start
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def update(self, step: int, n: int, loss: float, rate: float, budget_left_s: float | None = None) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(loss=f"{loss:.4f}")
        else:
            eta = (self.total - step) / rate if rate > 0 else float("inf")
            if budget_left_s is not None:
                eta = min(eta, budget_left_s)
            eta_s = f"{int(eta // 3600)}h{int(eta % 3600 // 60):02d}m" if math.isfinite(eta) else "?"
            print(f"step {step}/{self.total} loss {loss:.4f} {rate:.2f} steps/s eta {eta_s}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def summarize_log(log_path: Path) -> dict:
    """Steps, loss at the start and over the last records, and the step rate, from log.jsonl."""
    path = Path(log_path)
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    recs = [r for r in recs if "loss" in r]
    if not recs:
        return {"step": 0}
    tail = recs[-20:]
    return {
        "step": recs[-1]["step"], "first_loss": recs[0]["loss"],
        "recent_loss": float(np.mean([r["loss"] for r in tail])),
        "recent_steps_per_s": float(np.mean([r["steps_per_s"] for r in tail])),
        "loss_by_1000_steps": {str(int(k)): float(np.mean([r["loss"] for r in recs if r["step"] // 1000 == k]))
                               for k in sorted({r["step"] // 1000 for r in recs})},
    }


def plot_log(log_path: Path, png: Path) -> None:
    """Loss against step (raw and smoothed) from a run's log.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    recs = [r for r in recs if "loss" in r]
    if not recs:
        return
    steps = np.array([r["step"] for r in recs])
    loss = np.array([r["loss"] for r in recs])
    k = max(1, len(loss) // 50)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(steps, loss, lw=0.5, alpha=0.4, label="loss")
    ax.plot(steps[k - 1:], smooth, lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("v-prediction MSE")
    ax.legend()
    fig.tight_layout()
    tmp = png.with_name(png.name + ".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, png)


def save_spectrogram(mel: np.ndarray, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma")
    ax.set_title(title[:80])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
