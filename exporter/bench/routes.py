"""`n2m bench routes MODEL [MODEL ...]`: exported cascades (different routes, stages or sizes) timed
against each other in one run, for choosing which ships ("quality per second of compute").

Every model generates the same prompt at each clip length with its own manifest defaults (steps,
sampler, guidance, decoder) through the runtime engine on the CPU provider. Repeats are interleaved
and the model order is rotated each repeat (the machine drifts); medians are reported. Per model:
route, stages, output rate, size on disk of the graphs it loads, per-stage and total seconds, times
real time, the ratio to the first model, the share of CPU time the hypervisor stole during its
runs (median; /proc/stat), and the peak RSS of a fresh runtime-only process generating
a 30 s clip. With `--eval DIR` (one per model, same order; "-" for none) the models' `n2m eval`
summaries are joined in, so one table holds quality and cost. Writes routes.json and routes.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

from n2m.exporter.bench.engine import PROMPT, _engine_run, runtime_peak_rss
from n2m.exporter.bench.measure import _with_steal, cold_generate_s

QUALITY_KEYS = ("tempo_octave", "key", "style", "instruments", "fjd_over_shuffled")


def _quality(eval_dir: str) -> dict | None:
    if eval_dir in ("", "-"):
        return None
    p = Path(eval_dir)
    p = p / "eval.json" if p.is_dir() else p
    s = json.loads(p.read_text())
    s = s.get("summary", s)
    return {"tempo_octave": s["tempo"]["octave_4pct"], "key": s["key"]["tonic_or_relative"],
            "style": s["style"]["agreement"], "instruments": s.get("instruments", {}).get("agreement"),
            "fjd_over_shuffled": s.get("fjd_over_shuffled"), "prompts": s.get("prompts"), "source": str(p)}


def _size_mb(engine) -> float:
    """MB on disk of the graphs this engine loads (the variants it chose; a mel-route model loads its
    vocoder even when Griffin-Lim decodes) plus the text encoder and tokenizer."""
    man, root = engine.manifest, engine.model_dir
    total = 0
    for name, stage in man.stages.items():
        rel = stage.files.get(engine.variants.get(name, "fp32")) or next(iter(stage.files.values()))
        total += (root / rel).stat().st_size
    for rel in man.files:
        if rel.startswith(("text_encoder", "tokenizer")):
            total += (root / rel).stat().st_size
    return total / 1e6


def _run(engine, seconds: float, seed: int) -> dict[str, float]:
    """One clip's stage seconds (0 for a stage the route lacks) and the share of CPU time the
    hypervisor stole while it ran (where /proc/stat says)."""
    from n2m.bridge.controls import Controls

    r = _with_steal(_engine_run, engine, Controls(seconds=seconds).validated(), seed)
    return {"superres_s": 0.0, "griffin_lim_s": 0.0, **r}


def run_routes(models: list[str], clip_seconds: list[float], repeats: int, threads: int,
               evals: list[str] | None = None, rss: bool = True, log=print) -> dict:
    from n2m.bridge.engine import Engine

    engines = [Engine.load(m, provider="cpu", threads=threads) for m in models]
    for e in engines:  # warm-up: first-run allocations and thread pools, not measured
        _run(e, min(clip_seconds), seed=0)
    times: dict[int, dict[float, list]] = {i: {s: [] for s in clip_seconds} for i in range(len(engines))}
    for r in range(repeats):
        order = list(range(len(engines)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            for s in clip_seconds:
                times[i][s].append(_run(engines[i], s, seed=r))
        log(f"repeat {r + 1}/{repeats} done")
    evals = evals or []
    out_models = []
    for i, e in enumerate(engines):
        man = e.manifest
        per = {}
        for s in clip_seconds:
            rows = times[i][s]
            med = {k: statistics.median(row[k] for row in rows) for k in rows[0] if all(k in row for row in rows)}
            med["x_realtime"] = s / med["total_s"]
            med["runs_total_s"] = [row["total_s"] for row in rows]
            per[f"{s:g}s"] = med
        entry = {"model": str(e.model_dir), "model_id": e.model_id, "route": man.route,
                 "stages": list(man.stages), "sample_rate": e.sample_rate, "variants": dict(e.variants),
                 "decoder": man.default_decoder, "generator_steps": man.generator.default_steps,
                 "size_mb": round(_size_mb(e), 2), "clips": per}
        if rss:
            entry["runtime_process_30s"] = runtime_peak_rss(e.model_dir, "cpu", threads)
            entry["runtime_process_30s"]["cold_generate_s"] = cold_generate_s(e.model_dir, threads)
        q = _quality(evals[i]) if i < len(evals) else None
        if q is not None:
            entry["quality"] = q
        out_models.append(entry)
    base = out_models[0]["clips"]
    for m in out_models:
        for c, res in m["clips"].items():
            res["vs_first"] = res["total_s"] / base[c]["total_s"]
    import platform

    return {"prompt": PROMPT, "threads": threads, "repeats": repeats, "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "models": out_models}


def plot(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = report["models"]
    clips = list(models[0]["clips"])
    names = [Path(m["model"]).name for m in models]
    fig, axes = plt.subplots(1, len(clips), figsize=(5.5 * len(clips), 4.2), squeeze=False)
    colours = {"text_s": "#999999", "generator_s": "#4c72b0", "cascader_s": "#dd8452", "superres_s": "#55a868",
               "griffin_lim_s": "#8172b3"}
    for ax, clip in zip(axes[0], clips, strict=True):
        bottom = np.zeros(len(models))
        for key, colour in colours.items():
            vals = np.array([m["clips"][clip].get(key, 0.0) for m in models])
            ax.bar(names, vals, bottom=bottom, color=colour, label=key[:-2])
            bottom += vals
        for x, m in enumerate(models):
            res = m["clips"][clip]
            ax.text(x, res["total_s"], f"{res['total_s']:.1f} s\n{res['x_realtime']:.1f}x", ha="center", va="bottom",
                    fontsize=8)
        ax.set_ylim(0, max(m["clips"][clip]["total_s"] for m in models) * 1.25)
        ax.set_title(f"{clip} clip: seconds per stage (median of {report['repeats']})")
        ax.set_ylabel("wall seconds")
        ax.tick_params(axis="x", rotation=12)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="n2m bench routes", description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="exported model folders (the first is the baseline of the ratios)")
    p.add_argument("--out", default="runs/bench_routes")
    p.add_argument("--seconds", default="10,30", help="comma list of clip lengths")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--eval", action="append", default=[], metavar="DIR",
                   help="an `n2m eval` output (folder or eval.json) per model, in order; '-' for none")
    p.add_argument("--no-rss", action="store_true", help="skip the runtime-process peak-RSS run")
    args = p.parse_args(argv)
    try:
        seconds = [float(s) for s in args.seconds.split(",") if s.strip()]
    except ValueError:
        print(f"n2m bench routes: --seconds {args.seconds!r} is not a comma list of numbers", file=sys.stderr)
        return 2
    from n2m.bridge.controls import SECONDS_MAX, SECONDS_MIN

    if args.repeats < 1 or not seconds or any(not SECONDS_MIN <= s <= SECONDS_MAX for s in seconds):
        print(f"n2m bench routes: --repeats must be >= 1 and each of --seconds within "
              f"{SECONDS_MIN:g}-{SECONDS_MAX:g} s (a clip's range)", file=sys.stderr)
        return 2
    if args.eval and len(args.eval) != len(args.models):
        print(f"n2m bench routes: {len(args.eval)} --eval for {len(args.models)} models (use '-' for none)",
              file=sys.stderr)
        return 2
    for m in args.models:
        if not (Path(m) / "manifest.json").is_file():
            print(f"n2m bench routes: {m} is not an exported model folder (no manifest.json)", file=sys.stderr)
            return 2
    report = run_routes(args.models, seconds, args.repeats, args.threads, args.eval, rss=not args.no_rss,
                        log=lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "routes.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out / "routes.png")
    for m in report["models"]:
        line = ", ".join(f"{c} {r['total_s']:.2f} s ({r['x_realtime']:.1f}x, {r['vs_first']:.2f} of first)"
                         for c, r in m["clips"].items())
        q = m.get("quality")
        qs = (" | " + ", ".join(f"{k} {q[k]:.2f}" for k in QUALITY_KEYS if q.get(k) is not None)) if q else ""
        print(f"{Path(m['model']).name} [{m['route']}: {'+'.join(m['stages'])}, {m['size_mb']:.0f} MB]: {line}{qs}")
    print(f"wrote {out / 'routes.json'} and {out / 'routes.png'}")
    return 0


__all__ = ["main", "run_routes", "plot"]
