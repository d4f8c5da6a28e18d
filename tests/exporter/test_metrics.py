"""Audio meters on signals with known answers: notes (real Basic Pitch on ONNX Runtime), key and
scale from notes, chroma, per-band spectral distance, stereo image."""

from __future__ import annotations

import numpy as np
import pytest

from n2m.exporter.metrics.notes import in_scale_share, key_from_notes, note_scores
from n2m.exporter.metrics.spectral import (
    BANDS_HZ,
    band_lsd,
    band_name,
    chroma_scores,
    energy_above_db,
)
from n2m.exporter.metrics.stereo import lr_correlation, side_mid_db, stereo_scores
from n2m.exporter.metrics.transcribe import Notes, Transcriber

SR = 22050


def tones(pitches, onsets, seconds: float = 6.0, sr: int = SR, length: float = 0.5) -> np.ndarray:
    """Decaying sines (with two weak harmonics) at MIDI `pitches` starting at `onsets` (s)."""
    x = np.zeros(int(seconds * sr), np.float32)
    n = int(length * sr)
    t = np.arange(n) / sr
    for p, o in zip(pitches, onsets, strict=True):
        f = 440.0 * 2 ** ((p - 69) / 12)
        note = sum(a * np.sin(2 * np.pi * f * k * t) for k, a in ((1, 1.0), (2, 0.3), (3, 0.1)))
        s = int(o * sr)
        x[s:s + n] += (0.3 * note * np.exp(-3 * t)).astype(np.float32)[: len(x) - s]
    return x


@pytest.fixture(scope="module")
def transcriber():
    return Transcriber()


MELODY = [60, 64, 67, 62, 65, 69, 71, 72]
ONSETS = [0.25 + 0.6 * i for i in range(len(MELODY))]


def test_basic_pitch_finds_known_notes(transcriber):
    notes = transcriber.notes(tones(MELODY, ONSETS), SR)
    truth = Notes.of([(o, o + 0.5, p, 1.0) for p, o in zip(MELODY, ONSETS, strict=True)])
    assert sorted(notes.pitches) == sorted(MELODY)
    assert note_scores(truth, notes)["f1"] == 1.0
    # the same audio at another rate, and stereo, transcribes to the same notes
    import soxr

    at16 = soxr.resample(tones(MELODY, ONSETS), SR, 16000)
    assert note_scores(notes, transcriber.notes(np.stack([at16, at16]), 16000))["f1"] == 1.0


def test_note_f1_of_itself_and_of_another_pitch(transcriber):
    a = transcriber.notes(tones(MELODY, ONSETS), SR)
    up = transcriber.notes(tones([p + 1 for p in MELODY], ONSETS), SR)
    assert note_scores(a, a)["f1"] == 1.0
    assert note_scores(a, up)["f1"] == 0.0


def test_front_end_matches_basic_pitch_predict(transcriber, tmp_path):
    """Our array front-end gives the notes of basic_pitch's own file-based `predict`."""
    import soundfile as sf
    from basic_pitch.inference import Model, predict

    from n2m.exporter.metrics.transcribe import model_path

    path = tmp_path / "melody.wav"
    sf.write(str(path), tones(MELODY, ONSETS), SR, subtype="FLOAT")
    _, _, events = predict(str(path), Model(model_path()))
    theirs = Notes.of([(s, e, p, a) for s, e, p, a, _ in events])
    ours = transcriber.transcribe(tones(MELODY, ONSETS), SR)
    assert len(ours) == len(theirs)
    assert np.allclose(np.sort(ours.rows, axis=0), np.sort(theirs.rows, axis=0), atol=1e-4)


def test_note_scores_onset_window_and_empty():
    ref = Notes.of([(1.0, 1.5, 60, 0.5), (2.0, 2.5, 62, 0.5)])
    near = Notes.of([(1.04, 1.5, 60, 0.5), (2.0, 2.2, 62, 0.5)])  # offsets do not matter
    late = Notes.of([(1.06, 1.5, 60, 0.5), (2.0, 2.5, 62, 0.5)])
    assert note_scores(ref, near)["f1"] == 1.0
    assert note_scores(ref, late)["f1"] == pytest.approx(0.5)
    assert note_scores(Notes.of([]), Notes.of([]))["f1"] == 1.0
    assert note_scores(ref, Notes.of([]))["f1"] == 0.0
    assert note_scores(Notes.of([]), ref)["f1"] == 0.0


def test_scale_share_and_key_of_a_c_major_scale():
    c_major = [60, 62, 64, 65, 67, 69, 71, 72]
    durations = [2.0, 0.5, 1.0, 0.5, 1.5, 0.5, 0.5, 2.0]  # tonic and fifth held longest
    onsets = np.cumsum([0.0, *durations[:-1]])
    notes = Notes.of([(o, o + d, p, 0.6) for o, d, p in zip(onsets, durations, c_major, strict=True)])
    assert in_scale_share(notes, 0, "major") == 1.0
    assert in_scale_share(notes, 6, "major") < 1.0  # F# major shares only B and F with C major
    assert in_scale_share(notes, 9, "minor") == 1.0  # the relative minor's scale
    assert in_scale_share(Notes.of([]), 0, "major") is None
    assert key_from_notes(notes) == (0, "major")
    assert key_from_notes(Notes.of([])) is None


def test_stereo_of_identical_and_independent_channels():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(44100).astype(np.float32)
    assert side_mid_db(np.stack([x, x])) <= -100
    assert lr_correlation(np.stack([x, x])) == 1.0
    assert stereo_scores(x) == {"side_mid_db": side_mid_db(np.stack([x, x])), "lr_corr": 1.0}
    y = rng.standard_normal(44100).astype(np.float32)
    assert abs(side_mid_db(np.stack([x, y]))) < 0.5  # independent: as much side as mid
    assert abs(lr_correlation(np.stack([x, y]))) < 0.05
    assert lr_correlation(np.stack([x, -x])) == pytest.approx(-1.0)


def band_noise(lo: float, hi: float, seconds: float = 2.0, sr: int = 44100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(int(seconds * sr)))
    f = np.fft.rfftfreq(int(seconds * sr), 1 / sr)
    spec[(f < lo) | (f >= hi)] = 0
    x = np.fft.irfft(spec, n=int(seconds * sr))
    return (0.1 * x / x.std()).astype(np.float32)


def test_band_lsd_and_high_band_energy_of_band_limited_noise():
    names = [band_name(lo, hi) for lo, hi in BANDS_HZ]
    mid = band_noise(1000, 4000)
    same = band_lsd(mid, 44100, mid, 44100)
    assert all(v < 1e-6 for v in same.values())
    moved = band_lsd(mid, 44100, band_noise(4000, 8000, seed=1), 44100)
    assert moved[names[1]] > 40 and moved[names[2]] > 40  # energy where there was none, and none where there was
    assert moved[names[4]] < 5  # both silent up there
    # the same noise at 16 kHz: nothing lost below 8 kHz
    import soxr

    low = band_noise(200, 3000)
    at16 = band_lsd(low, 44100, soxr.resample(low, 44100, 16000), 16000)
    assert at16[names[0]] < 1.5 and at16[names[1]] < 1.5
    assert energy_above_db(band_noise(9000, 15000), 44100) > -0.1
    assert energy_above_db(low, 44100) < -60
    assert energy_above_db(soxr.resample(low, 44100, 16000), 16000) < -60


def test_chroma_of_itself_and_of_another_pitch():
    a = tones(MELODY, ONSETS)
    assert chroma_scores(a, SR, a, SR)["profile"] == pytest.approx(1.0)
    tritone = chroma_scores(a, SR, tones([p + 6 for p in MELODY], ONSETS), SR)
    assert tritone["profile"] < 0.5 and tritone["frames"] < 0.8
