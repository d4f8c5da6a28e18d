"""Note-based key and scale meters for `n2m eval`: Basic Pitch transcribes each clip, then the key
is estimated from the notes (exporter.metrics.notes) and scored like the chroma-based key (tonic, or
the relative key), and the share of notes in the requested scale is reported. The chroma key finder
misses keys on smeared low notes that a transcriber still resolves, so both are kept side by side.
Without Basic Pitch installed the meters are off (one log line) and the evaluation runs on."""

from __future__ import annotations

import numpy as np

from n2m.bridge.controls import tonic_index
from n2m.exporter.metrics.notes import in_scale_share, key_from_notes
from n2m.exporter.metrics.transcribe import Transcriber, TranscriberUnavailable


class NoteMeters:
    """One transcriber for the whole evaluation."""

    def __init__(self, log=print) -> None:
        try:
            self.transcriber: Transcriber | None = Transcriber()
        except TranscriberUnavailable as exc:
            log(f"eval: note-based meters are off: {exc}")
            self.transcriber = None

    def clip(self, audio: np.ndarray, sr: int, key: str | None, mode: str | None) -> dict:
        """{"note_key": tonic/relative match of the key found from notes, "in_scale": the share of
        notes in the requested scale, "notes": how many}; {} when off or no key was asked."""
        from n2m.exporter.evaluate import key_scores

        if self.transcriber is None or not key:
            return {}
        notes = self.transcriber.notes(audio, sr)
        est = key_from_notes(notes)
        out: dict = {"notes": len(notes)}
        if est is None:
            out["note_key"] = {"tonic": False, "tonic_or_relative": False, "estimated": None}
        else:
            out["note_key"] = key_scores(key, mode, est)
        if mode:
            out["in_scale"] = in_scale_share(notes, tonic_index(key), mode)
        return out


def summarise(rows: list[dict]) -> dict:
    """Fractions over the rows that carry note meters (`NoteMeters.clip` merged into each row)."""
    keyed = [r["note_key"] for r in rows if r.get("note_key")]
    shares = [r["in_scale"] for r in rows if r.get("in_scale") is not None]
    return {
        "n": len(keyed),
        "tonic": float(np.mean([k["tonic"] for k in keyed])) if keyed else None,
        "tonic_or_relative": float(np.mean([k["tonic_or_relative"] for k in keyed])) if keyed else None,
        "in_scale_n": len(shares),
        "in_scale_mean": float(np.mean(shares)) if shares else None,
        "in_scale_median": float(np.median(shares)) if shares else None,
    }



def report_lines(s: dict) -> list[str]:
    """The evaluation report's table rows for these meters (summary keys "notes" and
    "oracle_held_out"."notes")."""
    n, o = s.get("notes") or {}, (s.get("oracle_held_out") or {}).get("notes") or {}

    def f(x):
        return "n/a" if x is None else f"{x:.2f}"

    return [f"| key from transcribed notes, tonic or relative (n={n.get('n', 0)}) | {f(n.get('tonic_or_relative'))} "
            f"| | {f(o.get('tonic_or_relative'))} |",
            f"| transcribed notes in the requested scale (mean, n={n.get('in_scale_n', 0)}) | "
            f"{f(n.get('in_scale_mean'))} | | {f(o.get('in_scale_mean'))} |"]
