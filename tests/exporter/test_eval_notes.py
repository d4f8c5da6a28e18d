"""The note-based key and scale meters of `n2m eval` (real Basic Pitch) on tones with known keys."""

from __future__ import annotations

import numpy as np

from n2m.exporter.eval_notes import NoteMeters, report_lines, summarise

SR = 16000


def scale_tune(tonic_midi: int, steps=(0, 2, 4, 5, 7, 9, 11, 12, 7, 4, 0), seconds: float = 0.4) -> np.ndarray:
    """A tune on a major scale, with the tonic first and last (held longer)."""
    n = int(seconds * SR)
    parts = []
    for k, s in enumerate(steps):
        f = 440.0 * 2 ** ((tonic_midi + s - 69) / 12)
        hold = 2 if k in (0, len(steps) - 1) else 1
        tt = np.arange(n * hold) / SR
        parts.append((0.3 * np.sin(2 * np.pi * f * tt) * np.exp(-2 * tt)).astype(np.float32))
    return np.concatenate(parts)


def test_note_meters_on_a_c_major_tune():
    meters = NoteMeters(log=lambda m: None)
    audio = scale_tune(60)
    ok = meters.clip(audio, SR, "C", "major")
    assert ok["notes"] >= 8 and ok["in_scale"] == 1.0
    assert ok["note_key"]["tonic_or_relative"] and ok["note_key"]["estimated"] == "C major"
    far = meters.clip(audio, SR, "F#", "major")
    assert far["in_scale"] < 0.5 and not far["note_key"]["tonic_or_relative"]
    rel = meters.clip(audio, SR, "A", "minor")  # the relative minor: same scale
    assert rel["in_scale"] == 1.0 and rel["note_key"]["tonic_or_relative"] and not rel["note_key"]["tonic"]
    assert meters.clip(audio, SR, None, None) == {}
    s = summarise([ok, far, rel, {}])
    assert s["n"] == 3 and s["tonic_or_relative"] == 2 / 3 and s["in_scale_n"] == 3
    lines = report_lines({"notes": s, "oracle_held_out": {"notes": s}})
    assert len(lines) == 2 and "0.67" in lines[0]


def test_note_meters_off_without_basic_pitch(monkeypatch):
    from n2m.exporter import eval_notes
    from n2m.exporter.metrics.transcribe import TranscriberUnavailable

    def missing():
        raise TranscriberUnavailable("Basic Pitch is not installed. Fix: scripts/setup.sh dev")

    monkeypatch.setattr(eval_notes, "Transcriber", missing)
    logged = []
    meters = NoteMeters(log=logged.append)
    assert meters.clip(np.zeros(SR, np.float32), SR, "C", "major") == {}
    assert "off" in logged[0] and summarise([{}])["tonic_or_relative"] is None
