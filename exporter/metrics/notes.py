"""Meters on transcribed notes: note F1 between two transcriptions, the share of notes in a scale,
and a key estimate from notes (Krumhansl-Kessler profiles over the duration-weighted pitch classes)."""

from __future__ import annotations

import numpy as np

from n2m.exporter.corpus.theory import SCALES
from n2m.exporter.corpus.verify import KK_MAJOR, KK_MINOR
from n2m.exporter.metrics.transcribe import Notes

ONSET_TOLERANCE_S = 0.05


def _hz(pitches: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitches, dtype=np.float64) - 69.0) / 12.0)


def _intervals(notes: Notes) -> np.ndarray:
    """[n, 2] onset/offset intervals with a positive length (mir_eval rejects empty ones)."""
    iv = notes.rows[:, :2].copy()
    iv[:, 1] = np.maximum(iv[:, 1], iv[:, 0] + 1e-3)
    return iv


def note_scores(ref: Notes, est: Notes, onset_tolerance: float = ONSET_TOLERANCE_S) -> dict:
    """Precision, recall and F1 of `est` against `ref`: a note matches at the same MIDI pitch with
    its onset within `onset_tolerance` (offsets ignored), one to one (mir_eval's optimal matching).
    Empty on both sides scores F1 1; `ref` empty and `est` not scores 0."""
    if len(ref) == 0 or len(est) == 0:
        both = len(ref) == 0 and len(est) == 0
        return {"precision": float(both), "recall": float(both), "f1": float(both),
                "ref_notes": len(ref), "est_notes": len(est)}
    from mir_eval.transcription import precision_recall_f1_overlap

    # pitches are whole semitones: a 50-cent tolerance is "the same MIDI pitch"
    p, r, f, _ = precision_recall_f1_overlap(
        _intervals(ref), _hz(ref.pitches), _intervals(est), _hz(est.pitches),
        onset_tolerance=onset_tolerance, pitch_tolerance=50.0, offset_ratio=None)
    return {"precision": float(p), "recall": float(r), "f1": float(f),
            "ref_notes": len(ref), "est_notes": len(est)}


def note_f1(ref: Notes, est: Notes) -> float:
    return note_scores(ref, est)["f1"]


def scale_pitch_classes(tonic: int, mode: str) -> set[int]:
    return {(tonic + step) % 12 for step in SCALES[mode]}


def in_scale_share(notes: Notes, tonic: int, mode: str) -> float | None:
    """The fraction of notes whose pitch class is in the scale of `tonic` (0 = C) and `mode`;
    None without notes."""
    if len(notes) == 0:
        return None
    allowed = np.array(sorted(scale_pitch_classes(tonic, mode)))
    return float(np.mean(np.isin(notes.pitches % 12, allowed)))


def pitch_class_histogram(notes: Notes) -> np.ndarray:
    """[12] note durations summed per pitch class (C = 0)."""
    hist = np.zeros(12)
    dur = np.maximum(notes.offsets - notes.onsets, 0.0)
    np.add.at(hist, notes.pitches % 12, dur)
    return hist


def key_from_notes(notes: Notes) -> tuple[int, str] | None:
    """(tonic pitch class, "major"|"minor"): the Krumhansl-Kessler profile (24 rotations) best
    correlated with the duration-weighted pitch-class histogram; None without notes."""
    hist = pitch_class_histogram(notes)
    if hist.sum() <= 0 or np.ptp(hist) == 0:
        return None
    best, key = -np.inf, None
    for mode, profile in (("major", KK_MAJOR), ("minor", KK_MINOR)):
        for tonic in range(12):
            c = float(np.corrcoef(hist, np.roll(profile, tonic))[0, 1])
            if c > best:
                best, key = c, (tonic, mode)
    return key
