"""`n2m eval MODEL`: generate for the evaluation prompt set and measure how well the prompt is followed.

MODEL is an exported ONNX cascade directory (with manifest.json; run through n2m.bridge.engine) or a
pair of training checkpoints "GENERATOR.pt,VOCODER.pt" (run dirs work too: their last.pt is used),
run in torch with the runtime's numpy samplers. `--vocoder griffin-lim` renders the generator's
log-mel without the cascader (to evaluate a generator before its vocoder is trained).

Measured, per prompt and in aggregate (JSON + markdown report + plots under --out):
- tempo adherence: librosa beat tracking; fraction within 4% of the requested BPM (strict) and with
  octave errors allowed (x2, x1/2), median relative error;
- key adherence: chroma + Krumhansl-Schmuckler profiles; tonic matches or relative major/minor;
  beside it the key found from Basic Pitch's transcribed notes and the share of those notes in the
  requested scale (exporter.eval_notes);
- style adherence: the corpus-trained audio classifier (exporter.metrics.style) agrees with the
  prompt's style; instrument adherence where the prompt names instruments the classifier knows;
- Frechet distances on the classifier's embeddings (PCA to a few dimensions, fitted on training
  renders): FD of generated clips against held-out renders (audio only), and the prompt-aware
  Frechet Joint Distance (FJD: audio embedding joined with the prompt style's mean embedding),
  beside its two references: held-out against held-out (the floor) and the generated clips paired
  with shuffled prompts (what ignoring the prompt scores);
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
from n2m.exporter.eval_models import EvalOptions, OnnxCascade, TorchCascade, open_model
from n2m.exporter.eval_report import _json, _plots, _report
from n2m.exporter.metrics.adherence import (
    SR,
    bar_seconds,
    frechet,
    key_scores,
    measure_key,
    measure_tempo,
    sanity,
    tempo_scores,
)

__all__ = ["EvalOptions", "OnnxCascade", "TorchCascade", "evaluate", "frechet", "key_scores", "main",
           "measure_key", "measure_tempo", "open_model", "prompt_subset", "sanity", "tempo_scores"]


def prompt_controls(p: dict) -> Controls:
    def get(k):
        v = p.get(k)
        if v is None and isinstance(p.get("controls"), dict):
            v = p["controls"].get(k)
        return v

    bars = get("bars")
    return Controls(bpm=get("bpm"), key=get("key"), mode=get("mode"), meter=get("meter"),
                    bars=int(bars) if bars else None)


def _pca(train: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    mu = train.mean(0)
    _, _, vt = np.linalg.svd(train - mu, full_matrices=False)
    return mu, vt[:k].T


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
             opts: EvalOptions, log=print, held_out_of_n: bool = False) -> dict:
    """Generate for the evaluation prompts and measure. `n`: an evenly spread subset of n prompts
    (the reported set); `held_out_of_n`: the prompts that subset leaves out instead, for choosing
    settings (e.g. guidance) without looking at the reported set."""
    from n2m.exporter.corpus.reader import CorpusReader
    from n2m.exporter.eval_notes import NoteMeters
    from n2m.exporter.metrics.style import ClipClassifier

    reader = CorpusReader(corpus)
    clf = ClipClassifier.load(classifier)
    prompts = reader.eval_prompts()
    if not prompts:
        raise ValueError(f"{corpus} has no eval_prompts.jsonl")
    prompts = prompt_subset(prompts, n, held_out_of_n)
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    notes = NoteMeters(log)
    rows, gen_emb, mels = [], [], []
    t_start = time.monotonic()
    for i, p in enumerate(prompts):
        row, emb, mel = _prompt_row(model, clf, notes, p, i, opts, out)
        rows.append(row)
        gen_emb.append(emb)
        if i < 8:
            mels.append((row["prompt"], mel))
        el = time.monotonic() - t_start
        log(f"eval {i + 1}/{len(prompts)} {row['gen_seconds']:.1f}s/clip eta {el / (i + 1) * (len(prompts) - i - 1):.0f}s")
    held = reader.clips("test") + reader.clips("val")
    ref_emb, ref_style, oracle = _held_out(reader, held, clf, notes, opts)
    fd = _frechet_distances(reader, clf, np.array(gen_emb), [r["style"] for r in rows], np.array(ref_emb),
                            ref_style, opts.seed)
    summary = _summary(model, reader, rows, clf, fd, oracle, len(held), opts)
    (out / "eval.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, default=_json))
    _plots(out, rows, clf.cfg.styles, mels)
    (out / "report.md").write_text(_report(summary))
    return summary


def _prompt_row(model, clf, notes, p: dict, i: int, opts: EvalOptions, out: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """One prompt generated and measured: (row, classifier embedding, log-mel)."""
    text = p.get("prompt") or p.get("text") or ""
    try:
        ctl = prompt_controls(p).validated()
    except ControlError:
        ctl = Controls()
    seconds = min(opts.max_seconds, ctl.duration(opts.max_seconds))
    t0 = time.monotonic()
    audio = np.asarray(model(text, ctl, seconds, opts.seed + i), dtype=np.float32)
    row: dict = {"i": i, "prompt": text, "style": p.get("style"), "bpm": ctl.bpm, "key": ctl.key,
                 "mode": ctl.mode, "meter": ctl.meter, "seconds": seconds, "gen_seconds": time.monotonic() - t0}
    row["sanity"] = sanity(audio)
    safe = np.nan_to_num(audio)
    if ctl.bpm:
        row["measured_bpm"] = measure_tempo(safe)
        row["tempo"] = tempo_scores(ctl.bpm, row["measured_bpm"])
    if ctl.key:
        row["key_result"] = key_scores(ctl.key, ctl.mode, measure_key(safe, SR, bar_seconds(ctl.bpm, ctl.meter)))
        row.update(notes.clip(safe, SR, ctl.key, ctl.mode))
    mel = log_mel(safe, MelSpec())
    a = clf.analyse_mel(mel)
    styles, instruments = clf.cfg.styles, clf.cfg.instruments
    row["pred_style"] = styles[int(np.argmax(a["style_probs"]))]
    row["style_ok"] = row["pred_style"] == p.get("style")
    named = [x for x in (p.get("instruments") or []) if x in instruments]
    if not p.get("instruments"):  # prompt sets without the field: names found in the text
        named = [inst for inst in instruments if inst.lower() in text.lower()]
    if named:
        row["instruments"] = named
        row["instrument_ok"] = all(a["inst_probs"][instruments.index(x)] > 0.5 for x in named)
    if i < 8:
        import soundfile as sf

        sf.write(str(out / "audio" / f"{i:03d}.wav"), np.clip(safe, -1, 1), SR)
    return row, a["embedding"], mel


def _held_out(reader, held: list[dict], clf, notes, opts: EvalOptions) -> tuple[list, list, dict]:
    """The held-out renders: their embeddings (10 s windows) and styles, and the analysers run on
    them against their own labels (the oracle)."""
    styles, instruments = clf.cfg.styles, clf.cfg.instruments
    ref_emb, ref_style = [], []
    oracle: dict = {"tempo_octave": [], "tempo_strict": [], "key": [], "style": [], "instruments": [], "notes": []}
    for c in held:
        mel = reader.mel(c)
        f = 512
        for s in range(0, max(1, mel.shape[1] - f + 1), f):  # 10 s windows (or the whole clip)
            ref_emb.append(clf.analyse_mel(mel[:, s:s + f])["embedding"])
            ref_style.append(c["style"])
        audio = reader.audio16k(c)[: int(opts.max_seconds * SR)]
        if c.get("bpm"):
            ts = tempo_scores(float(c["bpm"]), measure_tempo(audio))
            oracle["tempo_octave"].append(ts["octave"])
            oracle["tempo_strict"].append(ts["strict"])
        if c.get("key"):
            bar = bar_seconds(c.get("bpm"), c.get("meter"))
            oracle["key"].append(key_scores(c["key"], c.get("mode"), measure_key(audio, SR, bar))["tonic_or_relative"])
            oracle["notes"].append(notes.clip(audio, SR, c["key"], c.get("mode")))
        a = clf.analyse_mel(mel)
        oracle["style"].append(styles[int(np.argmax(a["style_probs"]))] == c["style"])
        # the instruments an evaluation prompt may name: those of the chord and lead parts
        for role, inst in zip(c.get("roles") or [], c.get("instruments") or [], strict=False):
            if role in ("comp", "lead") and inst in instruments:
                oracle["instruments"].append(bool(a["inst_probs"][instruments.index(inst)] > 0.5))
    return ref_emb, ref_style, oracle


def _frechet_distances(reader, clf, gen_e: np.ndarray, gen_styles: list, ref_e: np.ndarray, ref_style: list,
                       seed: int) -> dict:
    """FD (audio only) and the prompt-aware FJD of the generated clips against the held-out windows,
    with their floors (held-out against held-out) and the shuffled-prompt reference, in a PCA space
    fitted on training renders."""
    train_emb, train_style = [], []
    for c in reader.clips("train")[:300]:
        train_emb.append(clf.analyse_mel(reader.mel(c)[:, :512])["embedding"])
        train_style.append(c["style"])
    train_a = np.array(train_emb)
    k = int(min(8, max(2, len(ref_e) // 4)))
    mu, proj = _pca(train_a, k)

    def proj_(x):
        return (np.asarray(x) - mu) @ proj

    style_mean = {s: proj_(train_a[[t == s for t in train_style]]).mean(0) for s in set(train_style)}
    zero = np.zeros(k)

    def joint(emb, labels):
        return np.concatenate([proj_(emb), np.stack([style_mean.get(s, zero) for s in labels])], axis=1)

    shuffled = list(np.random.default_rng(seed).permutation(gen_styles))
    half = np.arange(len(ref_e)) % 2 == 0
    ref_styles_a = np.array(ref_style)
    return {
        "dims": k, "generated": len(gen_e), "held_out_windows": len(ref_e),
        "fd_audio": frechet(proj_(gen_e), proj_(ref_e)),
        "fd_audio_floor": frechet(proj_(ref_e[half]), proj_(ref_e[~half])),
        "fjd": frechet(joint(gen_e, gen_styles), joint(ref_e, ref_style)),
        "fjd_shuffled_prompts": frechet(joint(gen_e, shuffled), joint(ref_e, ref_style)),
        "fjd_floor": frechet(joint(ref_e[half], ref_styles_a[half]), joint(ref_e[~half], ref_styles_a[~half])),
    }


def _frac(xs) -> float | None:
    xs = list(xs)
    return float(np.mean(xs)) if xs else None


def _summary(model, reader, rows: list[dict], clf, fd: dict, oracle: dict, held: int, opts: EvalOptions) -> dict:
    from n2m.exporter.eval_notes import summarise as summarise_notes

    tempo_rows = [r for r in rows if "tempo" in r]
    key_rows = [r for r in rows if "key_result" in r]
    inst_rows = [r for r in rows if "instrument_ok" in r]
    oracle_notes = oracle.pop("notes")
    summary = {
        "model": getattr(model, "id", str(model)), "corpus_id": reader.info.get("id"),
        "prompts": len(rows), "options": asdict(opts),
        "tempo": {"n": len(tempo_rows), "strict_4pct": _frac(r["tempo"]["strict"] for r in tempo_rows),
                  "octave_4pct": _frac(r["tempo"]["octave"] for r in tempo_rows),
                  "median_rel_error": float(np.median([r["tempo"]["rel_error"] for r in tempo_rows])) if tempo_rows else None},
        "key": {"n": len(key_rows), "tonic": _frac(r["key_result"]["tonic"] for r in key_rows),
                "tonic_or_relative": _frac(r["key_result"]["tonic_or_relative"] for r in key_rows)},
        "style": {"n": len(rows), "agreement": _frac(r["style_ok"] for r in rows)},
        "instruments": {"n": len(inst_rows), "agreement": _frac(r["instrument_ok"] for r in inst_rows)},
        "classifier": clf.info,
        "frechet": fd,
        "sanity": {k: int(sum(r["sanity"][k] for r in rows)) for k in ("nan", "clipping", "silence", "dc")},
        "notes": summarise_notes(key_rows),
        "oracle_held_out": {"clips": held, **{k: _frac(v) for k, v in oracle.items()},
                            "notes": summarise_notes(oracle_notes)},
        "gen_seconds_per_clip": float(np.mean([r["gen_seconds"] for r in rows])),
        "targets": {"tempo_octave_4pct": 0.8, "key_tonic_or_relative": 0.6, "style_agreement": 0.6,
                    "fjd_over_shuffled": 0.5},
    }
    summary["fjd_over_shuffled"] = fd["fjd"] / fd["fjd_shuffled_prompts"] if fd["fjd_shuffled_prompts"] > 0 else None
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="n2m eval", description="Evaluate a cascade on the evaluation prompt set.")
    p.add_argument("model", nargs="?",
                   help="ONNX cascade dir, or GEN.pt,VOC.pt (run dirs work), or a dir with generator.pt/vocoder.pt")
    p.add_argument("--vocoder", help="vocoder checkpoint or run dir, or 'griffin-lim'")
    p.add_argument("--corpus", default="corpus/v4")
    p.add_argument("--decoder", choices=["vocoder", "cascader", "griffin-lim"],
                   help="exported cascades: how log-mel becomes audio (default: the model's)")
    p.add_argument("--classifier", default="runs/classifier/classifier.pt")
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
                           log=lambda m: print(m, file=sys.stderr, flush=True), held_out_of_n=args.tuning_set)
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

