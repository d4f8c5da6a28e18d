"""`n2m generate` end to end on the tiny exported cascade: files, controls, errors."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from n2m.bridge import generate, modelpath
from n2m.bridge.cli import main as cli_main
from n2m.bridge.clipfile import measure_file, read_wav_info


def test_generate_writes_wav_clips(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    """Through the pipeline: bar-exact 24-bit WAV at 48 kHz, loudness-normalised, tagged, sidecar."""
    out = tmp_path / "clips"
    rc = cli_main(["generate", "rhodes chords, 88 bpm", "--key", "A minor", "--bars", "1",
                   "--seed", "7", "--variations", "2", "--out", str(out), "--model", str(tiny_model_dir),
                   "--provider", "cpu", "--threads", "1"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    paths = [Path(p) for p in cap.out.split()]
    assert len(paths) == 2 and all(p.name.endswith(f"rhodes-chords-88-bpm-s{s}.wav" if i == 0 else
                                                   f"rhodes-chords-88-bpm-s{s}-v1.wav")
                                   for i, (p, s) in enumerate(zip(paths, (7, 8), strict=True)))
    assert "generator" in cap.err and "100.0%" in cap.err and "seed 7" in cap.err
    for p, seed in zip(paths, (7, 8), strict=True):
        with wave.open(str(p)) as w:
            assert w.getnchannels() == 1 and w.getsampwidth() == 3 and w.getframerate() == 48000
            # 1 bar of 4/4 at 88 bpm = 2.727 s, exact to the sample
            assert w.getnframes() == round(4 * 60 / 88 * 48000)
        side = json.loads(p.with_name(p.name + ".json").read_text())
        assert side["seed"] == seed and side["bpm"] == 88.0 and side["bars"] == 1
        assert side["controls"]["key"] == "A" and side["controls"]["mode"] == "minor"
        assert read_wav_info(p)  # prompt, seed and model id in the file's own metadata
        m = measure_file(p)
        assert abs(m["loudness_lufs"] - (-14.0)) < 0.5 and m["true_peak_dbtp"] <= -1.0 + 1e-3


def test_generate_raw_writes_engine_output(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    rc = cli_main(["generate", "rhodes chords, 88 bpm", "--bars", "1", "--seed", "7", "--raw",
                   "--out", str(tmp_path), "--model", str(tiny_model_dir), "--threads", "1"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    (p,) = [Path(x) for x in cap.out.split()]
    assert p.name == "rhodes-chords-88-bpm-s7.wav"
    with wave.open(str(p)) as w:
        assert w.getframerate() == 16000 and w.getnframes() == round(4 * 60 / 88 * 16000)
    # the same request again would collide with an existing file: refused, nothing overwritten
    before = p.read_bytes()
    with pytest.raises(FileExistsError):
        cli_main(["generate", "rhodes chords, 88 bpm", "--bars", "1", "--seed", "7", "--raw",
                  "--out", str(tmp_path), "--model", str(tiny_model_dir), "--threads", "1"])
    assert p.read_bytes() == before


def test_precision_picks_the_graphs(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    """--precision int8 runs the tiny model's int8 graphs (the vocoder's at least: the exporter
    ships one where it passes parity): other samples than the fp32 default for the same seed;
    --precision fp32 is the default exactly."""
    def raw(name: str, *extra: str) -> bytes:
        rc = cli_main(["generate", "rhodes chords, 88 bpm", "--bars", "1", "--seed", "7", "--raw",
                       "--out", str(tmp_path / name), "--model", str(tiny_model_dir), "--threads", "1", *extra])
        out = capsys.readouterr()
        assert rc == 0, out.err
        return Path(out.out.split()[0]).read_bytes()

    default = raw("default")
    assert raw("fp32", "--precision", "fp32") == default
    assert raw("int8", "--precision", "int8") != default
    # tried: a precision that does not exist
    with pytest.raises(SystemExit):
        cli_main(["generate", "a beat", "--precision", "int4", "--model", str(tiny_model_dir)])
    assert "invalid choice: 'int4'" in capsys.readouterr().err


def test_wav16_roundtrip(tmp_path: Path) -> None:
    x = np.sin(np.linspace(0, 100, 1600)).astype(np.float32) * 0.5
    p = generate.write_wav(tmp_path / "a.wav", x, 16000, 2)
    with wave.open(str(p)) as w:
        y = np.frombuffer(w.readframes(1600), dtype="<i2") / 32767.0
    np.testing.assert_allclose(y, x, atol=1e-4)
    p3 = generate.write_wav(tmp_path / "b.wav", x, 16000, 3)
    with wave.open(str(p3)) as w:
        raw = np.frombuffer(w.readframes(1600), dtype=np.uint8).reshape(-1, 3)
    ints = (raw[:, 0].astype(np.int32) | (raw[:, 1].astype(np.int32) << 8) | (raw[:, 2].astype(np.int32) << 16))
    ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
    np.testing.assert_allclose(ints / 8388607.0, x, atol=1e-6)


def test_missing_default_model_is_one_clear_error(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(modelpath, "MODELS_DIR", tmp_path / "models")
    assert generate.main(["a beat", "--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "default model is not installed" in err and "manifest.json is missing" in err
    assert "n2m export" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--seconds", "500"], "out of range"), (["--bpm", "900"], "out of range"),
        (["--key", "H"], "unknown key"), (["--steps", "0"], "steps must be"),
        (["--guidance", "1000"], "outside this model's range"), (["--variations", "99"], "variations"),
        (["--format", "wav16"], "needs --raw"), (["--lufs", "12"], "out of range"),
    ],
)
def test_bad_requests_are_refused(tiny_model_dir: Path, tmp_path: Path, capsys, args, match) -> None:
    rc = generate.main(["a beat", "--model", str(tiny_model_dir), "--out", str(tmp_path), *args])
    assert rc == 2
    assert match in capsys.readouterr().err
    assert not list(tmp_path.glob("*.wav"))
