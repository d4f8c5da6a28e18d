"""`n2m eval MODEL`: generate for the evaluation prompt set and measure how well the prompt is followed.

MODEL is an exported ONNX cascade directory (with manifest.json; run through n2m.bridge.engine) or a
pair of training checkpoints "GENERATOR.pt,VOCODER.pt" (run dirs work too: their last.pt is used),
run in torch with the runtime's numpy samplers. `--vocoder griffin-lim` renders the generator's
log-mel without the cascader (to evaluate a generator before its vocoder is trained).

Measured, per prompt and in aggregate (JSON + markdown report + plots under --out):
- tempo adherence: bridge.tempo (librosa's beat tracker beside it); fraction within 4% of the
  requested BPM (strict), with octave errors allowed (x2, x1/2), and also at 6/8's dotted-quarter
  beat (felt), median relative error;
- key adherence: chroma + Krumhansl-Schmuckler profiles; tonic matches or relative major/minor;
  beside it the key found from Basic Pitch's transcribed notes and the share of those notes in the
  requested scale (exporter.eval_notes);
- style adherence: the corpus-trained audio classifier (exporter.metrics.style) agrees with the
  prompt's style; instrument adherence where the prompt names instruments the classifier knows;
- Frechet distances on the classifier's embeddings (PCA to a few dimensions, fitted on training
  renders): FD of generated clips against held-out renders (audio only), and the prompt-aware
  Frechet Joint Distance (FJD: audio embedding joined with the prompt style's mean embedding),
  beside its two references: held-out against held-out (the floor) and the generated clips paired
  with shuffled prompts (what ignoring the prompt scores). Both by the old classifier meter
  (`--classifier`, on the 16 kHz mono mix) and, with `--classifier-v2`, by a new one on the model's
  native output, side by side (exporter.eval_meters);
- stereo and band on the native output: energy above 8 kHz, side/mid, L/R correlation and the mono
  fold-down's loudness, per style against the held-out renders' FLACs (exporter.eval_stereo);
- sanity: NaN, clipping, silence, DC offset.
The same analysers are also run on held-out renders against their own labels ("oracle"), which
shows what the measurements themselves miss. `--ceiling` (exporter.eval_ceiling), `--superres`
(exporter.eval_superres) and `--edits` (exporter.eval_edits) measure other things on held-out renders.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from n2m.bridge.controls import ControlError, Controls
from n2m.bridge.features import MelSpec, log_mel
from n2m.exporter.eval_meters import NEW_KEY, Meter, frechet_distances
from n2m.exporter.eval_models import EvalClip, EvalOptions, OnnxCascade, TorchCascade, open_model
from n2m.exporter.eval_report import _json, _plots, _report
from n2m.exporter.metrics.adherence import (
    SR,
    bar_seconds,
    frechet,
    key_scores,
    measure_key,
    measure_tempo,
    measure_tempo_librosa,
    sanity,
    tempo_scores,
)

__all__ = ["EvalClip", "EvalOptions", "OnnxCascade", "TorchCascade", "evaluate", "frechet", "frechet_distances",
           "key_scores", "main", "measure_key", "measure_tempo", "measure_tempo_librosa", "open_model", "prompt_subset",
           "sanity", "tempo_scores"]


def prompt_controls(p: dict) -> Controls:
    def get(k):
        v = p.get(k)
        if v is None and isinstance(p.get("controls"), dict):
            v = p["controls"].get(k)
        return v

    bars = get("bars")
    return Controls(bpm=get("bpm"), key=get("key"), mode=get("mode"), meter=get("meter"),
                    bars=int(bars) if bars else None)


def prompt_subset(prompts: list[dict], n: int | None, tuning: bool = False) -> list[dict]:
    """The reported set: n prompts spread evenly over the file (it is grouped by style), or all;
    with `tuning`, the prompts that set leaves out."""
    if n and n < len(prompts):
        chosen = {int(i) for i in np.unique(np.linspace(0, len(prompts) - 1, n).round())}
        return [p for i, p in enumerate(prompts) if (i in chosen) != tuning]
    if tuning:
        raise ValueError("--tuning-set needs --n smaller than the number of evaluation prompts")
    return prompts


def evaluate(model, corpus: str | Path, classifier: str | Path, out: str | Path, n: int | None,
             opts: EvalOptions, log=print, held_out_of_n: bool = False,
             classifier_v2: str | Path | None = None) -> dict:
    """Generate for the evaluation prompts and measure. `n`: an evenly spread subset of n prompts
    (the reported set); `held_out_of_n`: the prompts that subset leaves out instead, for choosing
    settings (e.g. guidance) without looking at the reported set. `classifier_v2`: a second (new)
    classifier meter, fed the model's native output and reported beside the old one."""
    from n2m.exporter.corpus.reader import CorpusReader
    from n2m.exporter.eval_notes import NoteMeters
    from n2m.exporter.eval_stereo import render_measures
    from n2m.exporter.eval_stereo import summarise as summarise_stereo

    reader = CorpusReader(corpus)
    meters = [Meter.load(classifier, "old", native=False)]
    if classifier_v2:
        meters.append(Meter.load(classifier_v2, "new", native=True, key=NEW_KEY))
    prompts = reader.eval_prompts()
    if not prompts:
        raise ValueError(f"{corpus} has no eval_prompts.jsonl")
    prompts = prompt_subset(prompts, n, held_out_of_n)
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    notes = NoteMeters(log)
    rows, gen_emb, mels, channels = [], [[] for _ in meters], [], 1
    t_start = time.monotonic()
    for i, p in enumerate(prompts):
        row, embs, mel, clip = _prompt_row(model, meters, notes, p, i, opts, out)
        rows.append(row)
        channels = max(channels, clip.channels)
        for acc, e in zip(gen_emb, embs, strict=True):
            acc.append(e)
        if i < 8:
            mels.append((row["prompt"], mel))
        el = time.monotonic() - t_start
        log(f"eval {i + 1}/{len(prompts)} {row['gen_seconds']:.1f}s/clip eta {el / (i + 1) * (len(prompts) - i - 1):.0f}s")
    held = reader.clips("test") + reader.clips("val")
    oracle = _held_out(reader, held, notes, opts)
    gen_styles = [r["style"] for r in rows]
    meter_summaries = []
    for m, emb in zip(meters, gen_emb, strict=True):
        h = m.held_out(reader, held)
        meter_summaries.append(m.summary(rows, m.frechet(reader, np.array(emb), gen_styles, h, opts.seed), h))
    summary = _summary(model, reader, rows, meter_summaries, oracle, len(held), opts)
    summary["stereo"] = summarise_stereo(rows, render_measures(reader, held, opts.max_seconds), channels)
    (out / "eval.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, default=_json))
    _plots(out, rows, meters[0].clf.cfg.styles, mels)
    (out / "report.md").write_text(_report(summary))
    return summary


def _prompt_row(model, meters: list[Meter], notes, p: dict, i: int, opts: EvalOptions,
                out: Path) -> tuple[dict, list, np.ndarray, EvalClip]:
    """One prompt generated and measured: (row, each meter's embedding, 16 kHz log-mel, the clip)."""
    from n2m.exporter.eval_stereo import clip_measures

    text = p.get("prompt") or p.get("text") or ""
    try:
        ctl = prompt_controls(p).validated()
    except ControlError:
        ctl = Controls()
    seconds = min(opts.max_seconds, ctl.duration(opts.max_seconds))
    t0 = time.monotonic()
    clip = model.render(text, ctl, seconds, opts.seed + i)
    row: dict = {"i": i, "prompt": text, "style": p.get("style"), "bpm": ctl.bpm, "key": ctl.key,
                 "mode": ctl.mode, "meter": ctl.meter, "seconds": seconds, "gen_seconds": time.monotonic() - t0,
                 "rate": clip.rate, "channels": clip.channels}
    row["sanity"] = sanity(clip.audio16k)
    safe = np.nan_to_num(clip.audio16k)
    if ctl.bpm:
        row["measured_bpm"] = measure_tempo(safe)
        row["tempo"] = tempo_scores(ctl.bpm, row["measured_bpm"], ctl.meter)
        row["measured_bpm_librosa"] = measure_tempo_librosa(safe)
        row["tempo_librosa"] = tempo_scores(ctl.bpm, row["measured_bpm_librosa"], ctl.meter)
    if ctl.key:
        row["key_result"] = key_scores(ctl.key, ctl.mode, measure_key(safe, SR, bar_seconds(ctl.bpm, ctl.meter)))
        row.update(notes.clip(safe, SR, ctl.key, ctl.mode))
    embs = []
    for m in meters:
        fields, emb = m.clip(clip, p, text)
        if m.key is None:
            row.update(fields)
        else:
            row[m.key] = fields
        embs.append(emb)
    row["stereo"] = clip_measures(clip.native, clip.rate)
    if i < 8:  # the first clips as the model made them (rate and channels)
        import soundfile as sf

        native = np.clip(np.nan_to_num(clip.native), -1, 1)
        sf.write(str(out / "audio" / f"{i:03d}.wav"), native.T if native.ndim == 2 else native, clip.rate)
    return row, embs, log_mel(safe, MelSpec()), clip


def _held_out(reader, held: list[dict], notes, opts: EvalOptions) -> dict:
    """The tempo, key and note analysers run on the held-out renders against their own labels (the
    oracle); the classifier meters run on them in exporter.eval_meters."""
    oracle: dict = {k: [] for k in ("tempo_octave", "tempo_strict", "tempo_felt", "tempo_librosa_octave",
                                     "tempo_librosa_felt", "key", "notes")}
    for c in held:
        audio = reader.audio16k(c)[: int(opts.max_seconds * SR)]
        if c.get("bpm"):
            ts = tempo_scores(float(c["bpm"]), measure_tempo(audio), c.get("meter"))
            oracle["tempo_octave"].append(ts["octave"])
            oracle["tempo_strict"].append(ts["strict"])
            oracle["tempo_felt"].append(ts["felt"])
            tl = tempo_scores(float(c["bpm"]), measure_tempo_librosa(audio), c.get("meter"))
            oracle["tempo_librosa_octave"].append(tl["octave"])
            oracle["tempo_librosa_felt"].append(tl["felt"])
        if c.get("key"):
            bar = bar_seconds(c.get("bpm"), c.get("meter"))
            oracle["key"].append(key_scores(c["key"], c.get("mode"), measure_key(audio, SR, bar))["tonic_or_relative"])
            oracle["notes"].append(notes.clip(audio, SR, c["key"], c.get("mode")))
    return oracle


def _frac(xs) -> float | None:
    xs = list(xs)
    return float(np.mean(xs)) if xs else None


def _summary(model, reader, rows: list[dict], meters: list[dict], oracle: dict, held: int,
             opts: EvalOptions) -> dict:
    """The aggregate: the old meter's results where earlier reports had them, the new one's under
    NEW_KEY."""
    from n2m.exporter.eval_notes import summarise as summarise_notes

    tempo_rows = [r for r in rows if "tempo" in r]
    key_rows = [r for r in rows if "key_result" in r]
    oracle_notes = oracle.pop("notes")
    old = meters[0]
    summary = {
        "model": getattr(model, "id", str(model)), "corpus_id": reader.info.get("id"),
        "prompts": len(rows), "options": asdict(opts),
        "tempo": {"n": len(tempo_rows), "strict_4pct": _frac(r["tempo"]["strict"] for r in tempo_rows),
                  "octave_4pct": _frac(r["tempo"]["octave"] for r in tempo_rows),
                  "felt_4pct": _frac(r["tempo"]["felt"] for r in tempo_rows),
                  "median_rel_error": float(np.median([r["tempo"]["rel_error"] for r in tempo_rows])) if tempo_rows else None,
                  "meter": "bridge.tempo",
                  "librosa": {"octave_4pct": _frac(r["tempo_librosa"]["octave"] for r in tempo_rows),
                              "felt_4pct": _frac(r["tempo_librosa"]["felt"] for r in tempo_rows)}},
        "key": {"n": len(key_rows), "tonic": _frac(r["key_result"]["tonic"] for r in key_rows),
                "tonic_or_relative": _frac(r["key_result"]["tonic_or_relative"] for r in key_rows)},
        "style": old["style"], "instruments": old["instruments"], "classifier": old["classifier"],
        "frechet": old["frechet"], "fjd_over_shuffled": old["fjd_over_shuffled"],
        "meters": {m["label"]: m["meter"] for m in meters},
        "sanity": {k: int(sum(r["sanity"][k] for r in rows)) for k in ("nan", "clipping", "silence", "dc")},
        "notes": summarise_notes(key_rows),
        "oracle_held_out": {"clips": held, **{k: _frac(v) for k, v in oracle.items()}, **old["oracle_held_out"],
                            "notes": summarise_notes(oracle_notes)},
        "gen_seconds_per_clip": float(np.mean([r["gen_seconds"] for r in rows])),
        "targets": {"tempo_octave_4pct": 0.8, "key_tonic_or_relative": 0.6, "style_agreement": 0.6,
                    "fjd_over_shuffled": 0.5},
    }
    if len(meters) > 1:
        summary[NEW_KEY] = meters[1]
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="n2m eval", description="Evaluate a cascade on the evaluation prompt set.")
    p.add_argument("model", nargs="?",
                   help="ONNX cascade dir, or GEN.pt,VOC.pt (run dirs work), or a dir with generator.pt/vocoder.pt")
    p.add_argument("--vocoder", help="vocoder checkpoint or run dir, or 'griffin-lim'")
    p.add_argument("--corpus", default="corpus/v2")
    p.add_argument("--decoder", choices=["vocoder", "cascader", "griffin-lim"],
                   help="exported cascades: how log-mel becomes audio (default: the model's)")
    p.add_argument("--classifier", default="runs/classifier_mel80/classifier.pt",
                   help="the old style meter (mel80 classifier), fed each clip's 16 kHz mono mix")
    p.add_argument("--classifier-v2", metavar="PATH",
                   help="a new style meter (e.g. runs/classifier_coarse/classifier.pt), fed the model's native "
                        "output and reported beside the old one")
    p.add_argument("--out", help="output folder (default runs/eval; --edits: the model's folder)")
    p.add_argument("--n", type=int, help="evaluate N prompts spread evenly over the set (default all)")
    p.add_argument("--tuning-set", action="store_true",
                   help="evaluate the prompts the --n subset leaves out (to tune settings off the reported set)")
    p.add_argument("--steps", type=int, help="generator steps (default: the model's own, else 25)")
    p.add_argument("--guidance", type=float, help="guidance scale (default: the model's own, else 3)")
    p.add_argument("--sampler", choices=["ddim", "dpmpp_2m", "ancestral"],
                   help="generator sampler (default: the model's own, else dpmpp_2m)")
    p.add_argument("--vocoder-steps", type=int, default=12)
    p.add_argument("--max-seconds", type=float,
                   help="cap on each clip's length (default 10; --ceiling: the whole render)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--precision", choices=["fp32", "int8"],
                   help="exported cascades: which graphs run on the CPU (default fp32; int8 where exported)")
    p.add_argument("--superres", action="store_true",
                   help="measure only the 16 -> 48 kHz superres stage (MODEL: an exported cascade with one, or a "
                        "superres checkpoint) on held-out renders of a corpus built with --audio48k (--corpus)")
    p.add_argument("--superres-seconds", type=float, default=4.0, help="--superres: segment length per clip")
    p.add_argument("--loops", type=int, metavar="N",
                   help="measure loop seams on N evaluation prompts (MODEL: an exported cascade): loops sampled "
                        "periodic against crossfaded ones (exporter.eval_loops), loops.json under --out")
    p.add_argument("--ceiling", action="store_true",
                   help="measure MODEL's decoder alone and with an oracle generator on held-out renders "
                        "(--corpus, --n, default 60) instead of generating: ceiling.json/.md under --out")
    p.add_argument("--ceiling-spec", action="append", metavar="NAME",
                   help="also (or, without MODEL, only) measure a named front-end + Griffin-Lim on the same "
                        "renders: mel80_16k, mel192_44k_ms, mel192_44k_mono (repeat or comma-separate)")
    p.add_argument("--edits", action="store_true",
                   help="measure n2m extend, inpaint and vary through MODEL's engine (an exported cascade) on "
                        "held-out renders (--corpus, --n, default 20): edits.json/.md under --out")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.edits:
        if args.ceiling or args.ceiling_spec or args.superres:
            p.error("--edits measures on its own: drop --ceiling, --ceiling-spec and --superres")
        from n2m.exporter.eval_edits import main_edits

        return main_edits(args)
    args.out = args.out or "runs/eval"
    if args.ceiling_spec:
        args.ceiling_spec = [n.strip() for v in args.ceiling_spec for n in v.split(",") if n.strip()]
    if args.ceiling or args.ceiling_spec:
        from n2m.exporter.eval_ceiling import main_ceiling

        return main_ceiling(args)
    if not args.model:
        p.error("MODEL is required (only --ceiling-spec measures without one)")
    if args.max_seconds is None:
        args.max_seconds = 10.0
    if args.superres:
        return _main_superres(args)
    if args.loops:
        from n2m.exporter.eval_loops import main_loops

        return main_loops(args)
    opts = EvalOptions(args.steps, args.guidance, args.sampler, args.vocoder_steps, args.max_seconds, args.seed,
                       decoder=args.decoder)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        model = open_model(args.model, args.vocoder, opts, args.threads, args.precision)
        summary = evaluate(model, args.corpus, args.classifier, args.out, args.n, opts,
                           log=lambda m: print(m, file=sys.stderr, flush=True), held_out_of_n=args.tuning_set,
                           classifier_v2=args.classifier_v2)
    except (FileNotFoundError, ValueError) as exc:
        print(f"n2m eval: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1, default=_json))
    print(f"report: {Path(args.out) / 'report.md'}", file=sys.stderr)
    return 0


def _main_superres(args) -> int:
    from n2m.exporter.corpus.reader import CorpusError
    from n2m.exporter.eval_superres import evaluate_superres, open_superres

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    ignored = [f for f, v in (("--precision", args.precision), ("--decoder", args.decoder),
                              ("--vocoder", args.vocoder), ("--tuning-set", args.tuning_set)) if v]
    if ignored:
        print(f"n2m eval: --superres measures only that stage; {', '.join(ignored)} does not apply",
              file=sys.stderr)
        return 2
    try:
        model = open_superres(args.model, args.threads)
        summary = evaluate_superres(model, args.corpus, args.out, args.n, args.superres_seconds, args.seed,
                                    log=lambda m: print(m, file=sys.stderr, flush=True))
    except (FileNotFoundError, ValueError, CorpusError) as exc:
        print(f"n2m eval: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    print(f"report: {Path(args.out) / 'superres.md'}", file=sys.stderr)
    return 0

