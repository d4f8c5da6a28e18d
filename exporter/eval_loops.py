"""`n2m eval MODEL --loops N`: how seamless an exported cascade's loops are, sampled periodic against
the crossfaded loop made the old way.

For N evaluation prompts spread over the set (it is grouped by style), 4 bars at the prompt's
tempo (120 bpm where it names none) and meter, seed + i for prompt i: the loop sampled periodic
(`loop=1`) and the one-shot crossfaded into a loop (`loop_crossfade=1`), both through the clip
pipeline at 48 kHz, measured played round (bridge.pipeline): the level in the 50 ms either side of
the seam against the loop's usual level, and the spectral flux at the seam against the highest at
its inner bar lines. A seamless loop's seam is one more bar line, so it is the most abrupt of four
about one time in four by chance: beside the bounds, each loop's flux at every bar line (the loop
turned so that line is the seam) shows whether its seam stands out from its own bar lines.
Writes loops.json (summary and rows) under --out.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from n2m.bridge.pipeline import process_clip, seam_flux, seam_level_ratio
from n2m.bridge.request import from_options

BARS = 4
FREE_TIME_BPM = 120.0  # for prompts without a tempo: a loop of bars needs one
WAYS = {"periodic": {"loop": True}, "crossfade": {"loop": True, "loop_crossfade": True}}


def loop_row(engine, p: dict, seed: int) -> dict:
    """One prompt as both kinds of loop, measured."""
    row = {"prompt": p["prompt"], "style": p.get("style"), "bpm": p.get("bpm") or FREE_TIME_BPM,
           "meter": p.get("meter"), "bars": BARS, "seed": seed}
    for way, flags in WAYS.items():
        req = from_options({"prompt": p["prompt"], "bpm": row["bpm"], "meter": p.get("meter"), "bars": BARS,
                            "seed": seed, **flags})
        t0 = time.perf_counter()
        out = process_clip(engine.generate(req)[0], req.output)
        seam, inner = seam_flux(out.audio, out.sample_rate, BARS)
        n = len(out.audio)
        lines = [seam_flux(np.roll(out.audio, -round(k * n / BARS)), out.sample_rate, BARS)[0] for k in range(BARS)]
        row[way] = {"seam_level_ratio": seam_level_ratio(out.audio, out.sample_rate), "seam_flux": seam,
                    "inner_bar_flux_max": inner, "bar_line_flux": lines, "samples": n, "loop_seam": out.loop_seam,
                    "stretch_ratio": out.stretch_ratio, "seconds": time.perf_counter() - t0}
    return row


def summarise(rows: list[dict]) -> dict:
    """Per way: medians and the share of loops meeting each bound (level >= 0.5, flux <= inner)."""
    out = {}
    for way in WAYS:
        level = np.array([r[way]["seam_level_ratio"] for r in rows])
        flux = np.array([r[way]["seam_flux"] for r in rows])
        inner = np.array([r[way]["inner_bar_flux_max"] for r in rows])
        out[way] = {"n": len(rows), "seam_level_ratio_median": float(np.median(level)),
                    "seam_level_ratio_min": float(level.min()), "level_at_least_half": float(np.mean(level >= 0.5)),
                    "seam_flux_median": float(np.median(flux)), "inner_bar_flux_max_median": float(np.median(inner)),
                    "seam_over_inner_median": float(np.median(flux / inner)),
                    "flux_within_inner": float(np.mean(flux <= inner)),
                    "seam_over_inner_lines_median": float(np.median(
                        [r[way]["bar_line_flux"][0] / np.median(r[way]["bar_line_flux"][1:]) for r in rows])),
                    "seam_most_abrupt_line": float(np.mean(
                        [int(np.argmax(r[way]["bar_line_flux"])) == 0 for r in rows])),
                    "stretched": float(np.mean([abs(r[way]["stretch_ratio"] - 1.0) > 1e-9 for r in rows]))}
    return out


def main_loops(args) -> int:
    """The --loops measurement: MODEL must be an exported cascade folder."""
    from n2m.bridge.engine import Engine
    from n2m.exporter.corpus.reader import CorpusReader
    from n2m.exporter.evaluate import prompt_subset

    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    try:
        prompts = CorpusReader(args.corpus).eval_prompts()
        if not prompts:
            raise ValueError(f"{args.corpus} has no eval_prompts.jsonl")
        engine = Engine.load(args.model, provider="cpu", threads=args.threads)
    except (FileNotFoundError, ValueError) as exc:
        print(f"n2m eval: {exc}", file=sys.stderr)
        return 2
    rows = []
    for i, p in enumerate(prompt_subset(prompts, args.loops)):
        rows.append(loop_row(engine, p, args.seed + i))
        r = rows[-1]
        log(f"loops {i + 1}: {p['prompt'][:50]!r} level {r['periodic']['seam_level_ratio']:.2f} / "
            f"{r['crossfade']['seam_level_ratio']:.2f}, flux {r['periodic']['seam_flux']:.3f} / "
            f"{r['crossfade']['seam_flux']:.3f} (periodic / crossfade)")
    summary = {"model_id": engine.model_id, "corpus": str(args.corpus), "seed": args.seed, **summarise(rows)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "loops.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    print(json.dumps(summary, indent=1))
    log(f"wrote {out / 'loops.json'}")
    return 0
