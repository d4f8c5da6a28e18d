"""`n2m eval --superres`: the super-resolution stage measured on held-out 48 kHz renders, against
plain upsampling and a noise fill; its meters, both model forms (exported ONNX through the engine,
and a checkpoint in torch) and the errors for a corpus or a model that cannot be measured."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from n2m.bridge.engine import Engine, RequestError
from n2m.bridge.resample import upsample
from n2m.exporter.data import _resample, write_synthetic_corpus
from n2m.exporter.eval_superres import band_meters, evaluate_superres, open_superres
from n2m.exporter.evaluate import main as eval_main

SR48 = 48000


@pytest.fixture(scope="module")
def corpus48(tmp_path_factory) -> Path:
    # 16 clips: 2 val + 2 test (the held-out set measured here)
    return write_synthetic_corpus(tmp_path_factory.mktemp("sr48"), n_clips=16, seconds=2.0, seed=5, audio48k=True)


def _bright(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A 48 kHz signal with content on both sides of 8 kHz: tones at 440 Hz and 3 kHz, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR48)) / SR48
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)
            + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def test_meters_of_the_reference_itself_are_zero() -> None:
    ref = _bright()
    m = band_meters(ref, ref)
    assert m == pytest.approx({"lsd_high_db": 0.0, "lsd_low_db": 0.0, "hf_envelope_db": 0.0,
                               "hf_energy_ratio_db": 0.0}, abs=1e-9)


def test_upsampling_loses_the_high_band_and_keeps_the_low_band() -> None:
    ref = _bright()
    up = upsample(_resample(ref, SR48, 16000), 3)
    m = band_meters(ref, up)
    # white noise at 0.05 rms is ~-50 dB per bin above 8 kHz; upsampled has (almost) nothing there
    assert m["lsd_high_db"] > 20 and m["hf_energy_ratio_db"] < -20
    assert m["lsd_low_db"] < 0.1
    # a louder copy is off by its gain everywhere
    loud = band_meters(ref, ref * 2.0)
    assert loud["hf_energy_ratio_db"] == pytest.approx(20 * np.log10(2.0), abs=1e-6)
    assert loud["lsd_low_db"] == pytest.approx(20 * np.log10(2.0), rel=0.02)


def test_engine_superres_runs_only_that_stage(tiny_wave_superres_dir: Path, tiny_wave_dir: Path) -> None:
    eng = Engine.load(tiny_wave_superres_dir, provider="cpu", threads=1)
    low = _resample(_bright(0.5), SR48, 16000)[None].repeat(2, axis=0)  # 8000 samples: 25 frames of 320
    a = eng.superres(low, [1, 2])
    assert a.shape == (2, 24000) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_allclose(a[0], eng.superres(low[:1], [1])[0], atol=1e-4)  # a row depends on its seed only
    assert not np.allclose(a[0], a[1])
    with pytest.raises(RequestError, match="whole number of 320-sample grid frames"):
        eng.superres(low[:, :7999], [1, 2])  # not a whole grid frame
    with pytest.raises(RequestError, match="n seeds"):
        eng.superres(low, [1])  # one seed for two rows
    with pytest.raises(RequestError, match="no superres stage"):
        Engine.load(tiny_wave_dir, provider="cpu", threads=1).superres(low, [1, 2])


def test_evaluate_exported_stage_writes_report(tiny_wave_superres_dir: Path, corpus48: Path, tmp_path: Path) -> None:
    s = evaluate_superres(open_superres(tiny_wave_superres_dir, threads=1), corpus48, tmp_path, seconds=1.0,
                          log=lambda m: None)
    assert s["clips"] == 4 and s["segment_seconds"] == 1.0 and s["nan_clips"] == 0
    sup = json.loads((tiny_wave_superres_dir / "manifest.json").read_text())["stages"]["superres"]
    assert s["settings"]["steps"] == sup["default_steps"] and s["model"] == f"onnx:{tiny_wave_superres_dir}"
    for name in ("model", "model_raw", "upsampled", "noise_fill"):
        assert set(s["meters"][name]) == {"lsd_high_db", "lsd_low_db", "hf_envelope_db", "hf_energy_ratio_db"}
    # the runtime keeps the input's own band below the crossover: below 7 kHz the stage as run is
    # the upsampled input (the untrained tiny stage's raw output is not)
    m = s["meters"]
    assert m["model"]["lsd_low_db"] < 0.5 and m["model"]["lsd_low_db"] < m["model_raw"]["lsd_low_db"]
    # the noise fill is scaled to the reference's own high-band energy
    assert abs(s["meters"]["noise_fill"]["hf_energy_ratio_db"]) < 1.0
    assert s["compute_s_per_audio_s"] > 0
    saved = json.loads((tmp_path / "superres.json").read_text())
    assert saved["meters"] == s["meters"] and len(saved["rows"]) == 4
    assert "| model |" in (tmp_path / "superres.md").read_text()
    assert (tmp_path / "superres.png").stat().st_size > 1000


def test_cli_on_a_checkpoint(tiny_wave_checkpoints: dict, corpus48: Path, tmp_path: Path, capsys) -> None:
    rc = eval_main([str(tiny_wave_checkpoints["superres"]), "--superres", "--corpus", str(corpus48),
                    "--out", str(tmp_path), "--n", "2", "--superres-seconds", "0.5", "--threads", "1"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["clips"] == 2 and out["model"].startswith("torch:") and "rows" not in out
    assert out["settings"] == {"steps": 8, "sampler": "dpmpp_2m", "cond_aug": pytest.approx(0.1)}


def test_cli_refuses_what_it_cannot_measure(tiny_model_dir: Path, tiny_wave_superres_dir: Path,
                                            tmp_path: Path, capsys) -> None:
    # a corpus kept at 16 kHz only: nothing to compare with
    c16 = write_synthetic_corpus(tmp_path / "c16", n_clips=8, seconds=1.0, seed=1)
    assert eval_main([str(tiny_wave_superres_dir), "--superres", "--corpus", str(c16),
                      "--out", str(tmp_path / "o1")]) == 2
    assert "--audio48k" in capsys.readouterr().err
    # a model without a superres stage
    assert eval_main([str(tiny_model_dir), "--superres", "--corpus", str(c16), "--out", str(tmp_path / "o2")]) == 2
    assert "has no superres stage" in capsys.readouterr().err
    # options of the cascade evaluation, which the stage-only measurement would silently ignore
    assert eval_main([str(tiny_wave_superres_dir), "--superres", "--precision", "int8", "--corpus", str(c16),
                      "--out", str(tmp_path / "o4")]) == 2
    assert "--precision does not apply" in capsys.readouterr().err
    # a path that is neither
    assert eval_main([str(tmp_path / "nothing"), "--superres", "--out", str(tmp_path / "o3")]) == 2
    assert "neither an exported cascade nor a superres checkpoint" in capsys.readouterr().err
