"""`n2m eval MODEL --ceiling`: what a model's decoder keeps of real music, with no generator.

On held-out corpus renders (44.1 kHz stereo FLAC; "test" split, then "val"), each row decodes a
representation computed from the render and compares the audio with the render:
- "render": the render itself (its own stereo image and high band; note F1 1 by definition);
- "reference_16k": the render resampled to 16 kHz mono (what the corpus trains today's models on);
- "decoder_alone", "oracle_generator": the model's route (exporter.ceiling_routes);
- "spec:NAME": a named front-end + Griffin-Lim alone (`--ceiling-spec`), with or without a model.
Meters (exporter.metrics): note F1 (Basic Pitch on both sides, amplitude > 0.3, same MIDI pitch,
onsets within 50 ms), chroma correlation (mean profile and frame by frame), log-spectral distance
per band at 44.1 kHz, side/mid energy (dB) and L/R correlation, energy above 8 kHz (dB of the total),
and the decode's wall seconds per audio second. Writes ceiling.json and ceiling.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from n2m.exporter.ceiling_routes import Decoded, Decoder
from n2m.exporter.metrics.notes import note_scores
from n2m.exporter.metrics.spectral import (
    BANDS_HZ,
    band_lsd,
    band_name,
    chroma_scores,
    energy_above_db,
    resample,
)
from n2m.exporter.metrics.stereo import stereo_scores
from n2m.exporter.metrics.transcribe import Notes, Transcriber

# meters summarised by their mean (scores, distances, cost) and by their median (dB ratios)
MEAN_KEYS = ("note_f1", "note_precision", "note_recall", "chroma_profile", "chroma_frames",
             *(f"lsd_{band_name(lo, hi)}" for lo, hi in BANDS_HZ), "lr_corr", "cost_per_s")
MEDIAN_KEYS = ("side_mid_db", "hf_above_8k_db")


def held_out_clips(reader, n: int) -> list[dict]:
    """The first `n` clips of the "test" split, then of "val" when "test" is short."""
    return (reader.clips("test") + reader.clips("val"))[:n]


def load_render(reader, clip: dict, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """([2, samples] float32, rate) of the clip's FLAC, cut to `max_seconds`."""
    import soundfile as sf

    audio, sr = sf.read(str(reader.flac_path(clip)), dtype="float32", always_2d=True)
    audio = audio.T
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    if max_seconds:
        audio = audio[:, : int(round(max_seconds * sr))]
    return np.ascontiguousarray(audio[:2]), int(sr)


def reference_16k(render: np.ndarray, sr: int, seed: int) -> Decoded:
    t0 = time.perf_counter()
    audio = resample(render.mean(axis=0), sr, 16000)[None]
    return Decoded(audio, 16000, time.perf_counter() - t0)


def measure(render: np.ndarray, sr: int, ref_notes: Notes, out: Decoded, transcriber: Transcriber,
            same: bool = False) -> dict:
    """Every meter of `out` against the render; `same`: `out` is the render (its notes are reused)."""
    notes = ref_notes if same else transcriber.notes(out.audio, out.sr)
    ns = note_scores(ref_notes, notes)
    chroma = chroma_scores(render, sr, out.audio, out.sr)
    seconds = out.audio.shape[-1] / out.sr
    row = {"note_f1": ns["f1"], "note_precision": ns["precision"], "note_recall": ns["recall"],
           "notes": len(notes), "chroma_profile": chroma["profile"], "chroma_frames": chroma["frames"],
           **{f"lsd_{k}": v for k, v in band_lsd(render, sr, out.audio, out.sr).items()},
           **stereo_scores(out.audio), "hf_above_8k_db": energy_above_db(out.audio, out.sr),
           "cost_per_s": out.seconds / seconds if seconds > 0 else None,
           "sample_rate": out.sr, "channels": int(out.audio.shape[0])}
    return row


def summarise(rows: list[dict]) -> dict:
    def vals(k):
        return [r[k] for r in rows if r.get(k) is not None and np.isfinite(r[k])]

    out: dict = {"n": len(rows)}
    for k in MEAN_KEYS:
        v = vals(k)
        out[k] = float(np.mean(v)) if v else None
    for k in MEDIAN_KEYS:
        v = vals(k)
        out[k] = float(np.median(v)) if v else None
    return out


def run_ceiling(decoders: dict[str, Decoder], corpus: str | Path, out: str | Path, n: int = 60,
                max_seconds: float | None = None, threads: int = 1, label: str = "", log=print) -> dict:
    """Measure each decoder on `n` held-out renders; write ceiling.json and ceiling.md under `out`."""
    from n2m.exporter.corpus.reader import CorpusReader

    reader = CorpusReader(corpus)
    clips = held_out_clips(reader, n)
    if not clips:
        raise ValueError(f"{corpus} has no held-out ('test' or 'val') clips")
    transcriber = Transcriber(threads=threads)
    rows: dict[str, list[dict]] = {name: [] for name in ("render", "reference_16k", *decoders)}
    per_clip, t_start, transcribe_s = [], time.monotonic(), []
    for i, clip in enumerate(clips):
        render, sr = load_render(reader, clip, max_seconds)
        t0 = time.perf_counter()
        ref_notes = transcriber.notes(render, sr)
        transcribe_s.append((time.perf_counter() - t0) / (render.shape[1] / sr))
        rows["render"].append(measure(render, sr, ref_notes, Decoded(render, sr, 0.0), transcriber, same=True))
        rows["reference_16k"].append(measure(render, sr, ref_notes, reference_16k(render, sr, i), transcriber))
        for name, dec in decoders.items():
            rows[name].append(measure(render, sr, ref_notes, dec(render, sr, i), transcriber))
        per_clip.append({"id": clip["id"], "split": clip["split"], "seconds": render.shape[1] / sr,
                         "ref_notes": len(ref_notes)})
        el = time.monotonic() - t_start
        log(f"ceiling {i + 1}/{len(clips)} {clip['id']} eta {el / (i + 1) * (len(clips) - i - 1):.0f}s")
    summary = {
        "label": label, "corpus_id": reader.info.get("id"), "clips": len(clips),
        "splits": sorted({c["split"] for c in clips}),
        "audio_seconds": float(sum(c["seconds"] for c in per_clip)),
        "transcribe_s_per_audio_s": float(np.median(transcribe_s)),
        "rows": {name: summarise(r) for name, r in rows.items()},
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ceiling.json").write_text(json.dumps({"summary": summary, "clips": per_clip, "per_clip": rows},
                                                 indent=1))
    (out / "ceiling.md").write_text(report(summary))
    return summary


def _f(x, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def report(s: dict) -> str:
    bands = [f"lsd_{band_name(lo, hi)}" for lo, hi in BANDS_HZ]
    head = ["row", "note F1", "chroma profile", "chroma frames", *(f"LSD {b[4:]} (dB)" for b in bands),
            "side/mid (dB)", "L/R corr", "above 8 kHz (dB)", "decode s / audio s"]
    lines = [f"# Decoder ceiling{': ' + s['label'] if s['label'] else ''}", "",
             f"Corpus {s['corpus_id']}: {s['clips']} held-out renders ({', '.join(s['splits'])}), "
             f"{s['audio_seconds']:.0f} s of audio. Means, except side/mid and above 8 kHz (medians).",
             "Against the 44.1 kHz stereo render; note F1 by Basic Pitch (amplitude > 0.3, same pitch, "
             f"onsets within 50 ms; {_f(s['transcribe_s_per_audio_s'], 3)} s per audio second to transcribe).",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in s["rows"].items():
        cells = [name, _f(r["note_f1"]), _f(r["chroma_profile"]), _f(r["chroma_frames"]),
                 *(_f(r[b], 1) for b in bands), _f(r["side_mid_db"], 1), _f(r["lr_corr"]),
                 _f(r["hf_above_8k_db"], 1), _f(r["cost_per_s"], 3)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Rows: render = the render itself; reference_16k = the render resampled to 16 kHz mono "
              "(what mono audio band-limited to 8 kHz keeps, before any decoder); decoder_alone = the model's "
              "finest representation of the render -> its decoder; oracle_generator = the render in the "
              "generator's output space -> every stage after the generator; spec:NAME = that front-end + "
              "Griffin-Lim alone. LSD is floored at -100 dB re full scale, so a band the render barely "
              "fills (16-22 kHz) scores a small distance even when the output leaves it empty."]
    return "\n".join(lines) + "\n"


def main_ceiling(args) -> int:
    """`n2m eval [MODEL] --ceiling [--ceiling-spec NAME ...]`, from exporter.evaluate.main."""
    import sys

    from n2m.exporter.ceiling_routes import model_decoders, spec_decoder
    from n2m.exporter.corpus.reader import CorpusError

    try:
        decoders: dict[str, Decoder] = {}
        if args.ceiling and not args.model:
            raise ValueError("--ceiling measures MODEL's route: give MODEL (or only --ceiling-spec NAME)")
        if args.ceiling:
            decoders.update(model_decoders(args.model, args.decoder, args.threads))
        for name in args.ceiling_spec or []:
            decoders[f"spec:{name}"] = spec_decoder(name)
        summary = run_ceiling(decoders, args.corpus, args.out, args.n or 60, args.max_seconds,
                              label=args.model or "front-ends alone",
                              log=lambda m: print(m, file=sys.stderr, flush=True))
    except (FileNotFoundError, ValueError, CorpusError) as exc:
        print(f"n2m eval: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    print(f"report: {Path(args.out) / 'ceiling.md'}", file=sys.stderr)
    return 0
