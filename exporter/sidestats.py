"""Per-band mean and standard deviation of a corpus's normalised side-band rows: the data a
preconditioned side output (`UNetConfig.side_mean`, `side_sd`) is scaled to.

    python -m n2m.exporter.sidestats CONFIG --corpus DIR   # prints {"side_mean": [...], "side_sd": [...]}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from n2m.exporter.data import GeneratorData


def side_band_stats(data: GeneratorData) -> tuple[list[float], list[float]]:
    """(mean, sd) per side band over every frame of `data`'s clips, in the rows' normalised units."""
    bands = data.coarse.side_bands
    if not bands:
        raise ValueError("the data has no side bands (side_bands = 0)")
    n, s, s2 = 0, np.zeros(bands), np.zeros(bands)
    for clip in data.clips:
        rows = data.signal(clip)[0][-bands:].astype(np.float64)
        n += rows.shape[1]
        s += rows.sum(1)
        s2 += (rows ** 2).sum(1)
    mean = s / n
    sd = np.sqrt(np.maximum(s2 / n - mean ** 2, 0.0))
    return [round(float(m), 5) for m in mean], [round(float(d), 5) for d in sd]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m n2m.exporter.sidestats", description=__doc__.split("\n\n")[0])
    ap.add_argument("config", help="a training config of a generator with side bands")
    ap.add_argument("--corpus", help="the corpus (default: the config's)")
    ap.add_argument("--split", default="train")
    a = ap.parse_args(argv)
    cfg = json.loads(Path(a.config).read_text())
    model = cfg["model"]
    try:
        data = GeneratorData(a.corpus or cfg.get("corpus"), a.split, 512, model.get("mel_mean", -4.5),
                             model.get("mel_scale", 7.0), representation=model.get("representation", "mel"),
                             side_bands=model.get("side_bands", 0))
        mean, sd = side_band_stats(data)
    except ValueError as exc:
        print(f"sidestats: {a.config}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"side_mean": mean, "side_sd": sd}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
