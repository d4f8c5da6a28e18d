"""The report `n2m eval` writes beside eval.json: report.md and the plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _json(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _fmt(x) -> str:
    return "n/a" if x is None else (f"{x:.2f}" if isinstance(x, float) else str(x))


def _librosa_tempo_rows(s: dict) -> list[str]:
    """The earlier tempo meter's figures (librosa's beat tracker), where the report has them."""
    lib, ora = s["tempo"].get("librosa"), s["oracle_held_out"]
    if not lib:
        return []
    return [f"| tempo by librosa's beat tracker (the earlier meter): octave errors allowed / 6/8 also dotted "
            f"quarter | {_fmt(lib['octave_4pct'])} / {_fmt(lib['felt_4pct'])} | | "
            f"{_fmt(ora.get('tempo_librosa_octave'))} / {_fmt(ora.get('tempo_librosa_felt'))} |"]


def _report(s: dict) -> str:
    from n2m.exporter.eval_meters import NEW_KEY, side_by_side_lines
    from n2m.exporter.eval_notes import report_lines as note_report_lines
    from n2m.exporter.eval_stereo import report_lines as stereo_report_lines

    fd, t = s["frechet"], s["targets"]
    meter_rows = [
        f"| style agreement (classifier) | {_fmt(s['style']['agreement'])} | >= {t['style_agreement']} | "
        f"{_fmt(s['oracle_held_out']['style'])} |",
        f"| instruments named in the prompt detected (n={s['instruments']['n']}) | {_fmt(s['instruments']['agreement'])} | | "
        f"{_fmt(s['oracle_held_out'].get('instruments'))} |",
        f"| FJD (prompt-aware Frechet) | {_fmt(fd['fjd'])} | <= 0.5 x shuffled | floor {_fmt(fd['fjd_floor'])} |",
        f"| FJD, shuffled prompts | {_fmt(fd['fjd_shuffled_prompts'])} | | |",
        f"| FJD / shuffled | {_fmt(s['fjd_over_shuffled'])} | <= {t['fjd_over_shuffled']} | |",
        f"| FD audio only vs held-out | {_fmt(fd['fd_audio'])} | | floor {_fmt(fd['fd_audio_floor'])} |",
    ]
    both = NEW_KEY in s  # two meters: their rows move to a side-by-side table
    lines = [
        f"# n2m evaluation: {s['model']}", "",
        f"Corpus {s['corpus_id']}, {s['prompts']} evaluation prompts, options {s['options']}.", "",
        "| measure | value | target | held-out renders (oracle) |", "|---|---|---|---|",
        f"| tempo within 4%, octave errors allowed (n={s['tempo']['n']}) | {_fmt(s['tempo']['octave_4pct'])} | "
        f">= {t['tempo_octave_4pct']} | {_fmt(s['oracle_held_out']['tempo_octave'])} |",
        f"| tempo within 4%, strict | {_fmt(s['tempo']['strict_4pct'])} | | {_fmt(s['oracle_held_out']['tempo_strict'])} |",
        f"| tempo within 4%, octave errors allowed, 6/8 also at its dotted-quarter beat | "
        f"{_fmt(s['tempo'].get('felt_4pct'))} | | {_fmt(s['oracle_held_out'].get('tempo_felt'))} |",
        f"| tempo median relative error | {_fmt(s['tempo']['median_rel_error'])} | | |",
        *_librosa_tempo_rows(s),
        f"| key tonic or relative (n={s['key']['n']}) | {_fmt(s['key']['tonic_or_relative'])} | "
        f">= {t['key_tonic_or_relative']} | {_fmt(s['oracle_held_out']['key'])} |",
        f"| key tonic exact | {_fmt(s['key']['tonic'])} | | |",
        *note_report_lines(s),
        *([] if both else meter_rows),
        *(side_by_side_lines(s) if both else []),
        *stereo_report_lines(s),
        "",
        f"Classifier held-out: {json.dumps(s['classifier'].get('test'))}"
        + (f"; new meter: {json.dumps(s[NEW_KEY]['classifier'].get('test'))}" if both else ""),
        f"Sanity failures (clips): {s['sanity']}. Generation: {s['gen_seconds_per_clip']:.1f} s per clip.",
        f"Frechet distances on {fd['dims']}-d PCA of classifier embeddings; {fd['generated']} generated clips, "
        f"{fd['held_out_windows']} held-out windows.", "",
        "Plots: confusion.png (requested vs classified style), tempo.png, spectrograms.png; audio/ has the first clips.",
    ]
    return "\n".join(lines) + "\n"


def _plots(out: Path, rows: list[dict], styles: list[str], mels: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = {s: i for i, s in enumerate(styles)}
    cm = np.zeros((len(styles), len(styles)), dtype=int)
    for r in rows:
        if r["style"] in idx:
            cm[idx[r["style"]], idx[r["pred_style"]]] += 1
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(styles)), styles, rotation=90, fontsize=7)
    ax.set_yticks(range(len(styles)), styles, fontsize=7)
    ax.set_xlabel("classified")
    ax.set_ylabel("requested")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=90)
    plt.close(fig)
    tr = [r for r in rows if "measured_bpm" in r]
    fig, ax = plt.subplots(figsize=(5, 5))
    if tr:
        req = [r["bpm"] for r in tr]
        ax.scatter(req, [r["measured_bpm"] for r in tr], s=10)
        xs = np.linspace(min(req), max(req), 10)
        for f in (1.0, 2.0, 0.5):
            ax.plot(xs, xs * f, "k--" if f == 1 else "k:", lw=0.7)
    ax.set_xlabel("requested bpm")
    ax.set_ylabel("measured bpm")
    fig.tight_layout()
    fig.savefig(out / "tempo.png", dpi=90)
    plt.close(fig)
    if mels:
        fig, axes = plt.subplots(len(mels), 1, figsize=(9, 1.8 * len(mels)), squeeze=False)
        for ax, (text, mel) in zip(axes[:, 0], mels, strict=True):
            ax.imshow(mel, origin="lower", aspect="auto", cmap="magma")
            ax.set_title(text[:90], fontsize=7)
            ax.set_axis_off()
        fig.tight_layout()
        fig.savefig(out / "spectrograms.png", dpi=80)
        plt.close(fig)
