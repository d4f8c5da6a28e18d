"""The stereo measures of `n2m eval` (exporter.eval_stereo) on signals whose answers are known, and
their per-style verdicts against render spreads built by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from n2m.bridge.loudness import ABS_GATE_LUFS, integrated_loudness
from n2m.exporter.eval_stereo import MONO, clip_measures, folddown_db, report_lines, summarise

SR = 44100


def noise(seconds: float = 3.0, seed: int = 0, level: float = 0.1) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def test_identical_channels_fold_down_without_loss():
    """Tried: the same noise on both channels. (L+R)/2 on both channels is the clip itself, so
    BS.1770 gives exactly the same loudness (0 dB, not -3 dB); no side, correlation 1."""
    x = noise()
    m = clip_measures(np.stack([x, x]), SR)
    assert m["folddown_db"] == pytest.approx(0.0, abs=1e-9)
    assert m["lr_corr"] == 1.0 and m["side_mid_db"] == -120.0
    # white noise at 44.1 kHz: (22050 - 8000) / 22050 of its energy lies above 8 kHz
    assert m["high_db"] == pytest.approx(10 * math.log10(14050 / 22050), abs=0.1)


def test_independent_and_hard_panned_channels_lose_3_db():
    """Tried: two independent noises of equal level (their powers add in the fold-down: half the
    stereo power) and one noise panned hard left (x/2 on both channels: half the power exactly)."""
    a, b = noise(seed=1), noise(seed=2)
    m = clip_measures(np.stack([a, b]), SR)
    assert m["folddown_db"] == pytest.approx(-3.01, abs=0.1)
    assert abs(m["lr_corr"]) < 0.05 and m["side_mid_db"] == pytest.approx(0.0, abs=0.2)
    panned = np.stack([a, np.zeros_like(a)])
    assert folddown_db(panned, SR) == pytest.approx(10 * math.log10(0.5), abs=1e-6)


def test_anti_phase_content_cancels_in_the_fold_down():
    """Tried: L = x, R = -x. The fold-down is silent, counted at the -70 LUFS gate; the side holds
    everything (side/mid at the +120 dB ceiling) and the correlation is -1."""
    x = noise(level=0.2)
    st = np.stack([x, -x])
    m = clip_measures(st, SR)
    assert m["folddown_db"] == pytest.approx(ABS_GATE_LUFS - integrated_loudness(st, SR), abs=1e-9)
    assert m["folddown_db"] < -40
    assert m["lr_corr"] == pytest.approx(-1.0) and m["side_mid_db"] == 120.0


def test_mono_and_silent_clips():
    """Tried: a mono [n] clip (every field "mono"), a [1, n] one, and stereo silence (no loudness:
    the fold-down difference is None, not a pass)."""
    assert clip_measures(noise(), SR) == dict.fromkeys(("high_db", "side_mid_db", "lr_corr", "folddown_db"), MONO)
    assert clip_measures(noise()[None], SR)["lr_corr"] == MONO
    assert folddown_db(np.zeros((2, SR), np.float32), SR) is None
    with pytest.raises(ValueError, match=r"\[2, samples\]"):
        clip_measures(np.zeros((3, SR), np.float32), SR)


def _m(high, side, corr, fold):
    return {"high_db": high, "side_mid_db": side, "lr_corr": corr, "folddown_db": fold}


def test_per_style_verdicts_against_the_renders_spread():
    """Tried: style "a" generated inside every bar; style "b" with energy 12 dB under the renders'
    median, side/mid above their 90th percentile, correlation below their 10th and a -2 dB
    fold-down; style "c" with no held-out renders (only the fold-down bar can be judged)."""
    renders = {"clips": [("a", _m(-20 + d, -15 + d, 0.9 + d / 100, -0.2)) for d in (-2, -1, 0, 1, 2)]
               + [("b", _m(-20 + d, -15 + d, 0.9 + d / 100, -0.2)) for d in (-2, -1, 0, 1, 2)],
               "missing": 1, "seconds": 10.0}
    rows = [{"style": "a", "stereo": _m(-25.0, -15.5, 0.905, -0.5)},
            {"style": "a", "stereo": _m(-23.0, -14.5, 0.895, -1.0)},
            {"style": "b", "stereo": _m(-32.0, -10.0, 0.5, -2.0)},
            {"style": "c", "stereo": _m(-20.0, -15.0, 0.9, -0.1)}]
    s = summarise(rows, renders, channels=2)
    a, b, c = s["styles"]["a"], s["styles"]["b"], s["styles"]["c"]
    assert a["n"] == 2 and a["generated"]["high_db"] == -24.0
    assert a["renders"]["high_db"]["median"] == -20.0 and a["renders"]["side_mid_db"]["n"] == 5
    assert all(a["pass"].values())
    assert b["pass"] == {"high_db": False, "side_mid_db": False, "lr_corr": False, "folddown_db": False}
    assert c["pass"] == {"high_db": None, "side_mid_db": None, "lr_corr": None, "folddown_db": True}
    assert s["passed"]["high_db"] == {"passed": 1, "styles": 2}
    assert s["passed"]["folddown_db"] == {"passed": 2, "styles": 3}
    assert s["folddown_clips_within"] == 0.75 and s["renders"]["missing_flac"] == 1
    text = "\n".join(report_lines({"stereo": s}))
    assert "| b | 1 |" in text and "FAIL" in text and "no renders" in text


def test_a_mono_model_says_mono_instead_of_failing():
    """Tried: one mono row; the renders' spread is still reported as the reference."""
    renders = {"clips": [("a", _m(-20.0, -15.0, 0.9, -0.1))], "missing": 0, "seconds": 10.0}
    s = summarise([{"style": "a", "stereo": clip_measures(noise(), SR)}], renders, channels=1)
    a = s["styles"]["a"]
    assert set(a["generated"].values()) == {MONO} and set(a["pass"].values()) == {MONO}
    assert a["renders"]["lr_corr"]["median"] == 0.9
    assert set(s["passed"].values()) == {MONO} and s["folddown_clips_within"] == MONO
    assert "The model is mono" in "\n".join(report_lines({"stereo": s}))
