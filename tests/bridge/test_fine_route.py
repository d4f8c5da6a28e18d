"""The fine route (coarse generator -> spectral cascader -> Griffin-Lim, 44.1 kHz stereo) through the
real engine, pipeline, file writer and loudness meter, on the tiny exported fixture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile

from n2m.bridge.engine import Engine, RequestError
from n2m.bridge.features import COARSE, FINE, coarse_mel, fine_mel
from n2m.bridge.loudness import integrated_loudness, true_peak
from n2m.bridge.manifest import Manifest, ModelError
from n2m.bridge.request import from_options
from n2m.bridge.spectral import HF_MARGIN, TOP_BINS, crossover, decode_fine


def test_engine_makes_stereo_at_44k(tiny_fine_dir: Path) -> None:
    """Two takes of 2 s: [2, 88200] each, the same seed gives the same clip, stages in order."""
    eng = Engine.load(tiny_fine_dir, provider="cpu", threads=2)
    assert eng.manifest.route == "fine" and eng.manifest.channels == 2 and eng.sample_rate == 44100
    events: list[dict] = []
    req = from_options({"prompt": "lofi piano", "seconds": 2.0, "seed": 5, "variations": 2})
    clips = eng.generate(req, progress=events.append)
    assert [c.audio.shape for c in clips] == [(2, 88200)] * 2
    assert all(np.isfinite(c.audio).all() and np.abs(c.audio).max() > 0 for c in clips)
    assert not np.allclose(clips[0].audio, clips[1].audio)
    stages = [e["stage"] for e in events]
    assert stages.index("generator") < stages.index("spectral") < stages.index("griffin-lim")
    fracs = [e["fraction"] for e in events]
    assert fracs == sorted(fracs) and fracs[-1] == pytest.approx(1.0)
    again = eng.generate(from_options({"prompt": "lofi piano", "seconds": 2.0, "seed": 6}))[0]
    assert np.array_equal(again.audio, clips[1].audio)  # take 2 of seed 5 is seed 6 alone


def test_generate_cli_writes_a_stereo_file(tiny_fine_dir: Path, tmp_path: Path) -> None:
    """`n2m generate --model FINE --bpm 120 --bars 1`: a 2-channel 48 kHz WAV, loudness over both
    channels at -14 LUFS, true peak under -1 dBTP, the sidecar saying 2 channels."""
    r = subprocess.run([sys.executable, "-m", "n2m.bridge.cli", "generate", "house groove", "--model", str(tiny_fine_dir),
                        "--bpm", "120", "--bars", "1", "--seed", "3", "--out", str(tmp_path), "--quiet"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    wav = next(tmp_path.glob("*.wav"))
    with AudioFile(str(wav)) as f:
        x, sr = f.read(f.frames), f.samplerate
    assert x.shape == (2, 96000) and sr == 48000
    assert integrated_loudness(x, sr) == pytest.approx(-14.0, abs=0.2)
    assert 20 * np.log10(true_peak(x)) <= -0.99
    meta = json.loads(wav.with_name(wav.name + ".json").read_text())
    assert meta["channels"] == 2 and meta["samples"] == 96000


def test_crossover_keeps_the_generators_band() -> None:
    """Random cascader output and an unrelated coarse mel: below the coarse band's top the mid is
    the coarse mel interpolated in time, above it no bin passes the frame's top coarse
    bins by more than HF_MARGIN, and no side bin is louder than the mid's."""
    rng = np.random.default_rng(0)
    fine = rng.normal(-4, 4, (2, FINE.n_mels, 64)).astype(np.float32)
    coarse = rng.normal(-3, 2, (COARSE.n_bins, 32)).astype(np.float32)
    out = crossover(fine, coarse, COARSE)
    b = COARSE.n_bins
    # coarse frame j is centred between fine frames 2j and 2j+1: linear in time between centres
    want_even = 0.25 * coarse[:, :-1] + 0.75 * coarse[:, 1:]  # fine frames 2, 4, ...
    assert np.abs(out[0, :b, 2::2] - want_even).max() < 1e-4
    top = out[0, b - TOP_BINS:b].max(axis=0) + HF_MARGIN
    assert (out[0, b:] <= top[None] + 1e-6).all() and (out[1] <= out[0] + 1e-6).all()
    assert (out[0, b:] < fine[0, b:]).any()  # the limit bit somewhere in this random input


def test_decode_fine_puts_mid_and_side_back() -> None:
    """A mono tone (side silent) comes back with L = R. The mel keeps the side's level but not its
    sign against the mid, so a tone only on the left and one only on the right come back alike,
    neither on the wrong side (the side once started from the mid's phase put both hard left),
    with the input's side/mid level; decorrelated stereo noise (a reverb's tail) comes back with
    the input's L/R correlation."""
    from n2m.exporter.metrics.stereo import lr_correlation, side_mid_db

    sr, t = FINE.sample_rate, np.arange(FINE.sample_rate) / FINE.sample_rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)

    def decode(stereo: np.ndarray) -> np.ndarray:
        fm = fine_mel(stereo)
        return decode_fine(fm[None], coarse_mel(fm[0])[None], FINE, COARSE, [1], sr, threads=1)[0]

    out = decode(np.stack([tone, tone]))
    assert np.abs(out[0] - out[1]).max() < 1e-3 * np.abs(out).max()
    balance = []
    for stereo in (np.stack([tone, 0 * tone]), np.stack([0 * tone, tone])):
        out = decode(stereo)
        left, right = (float(np.sqrt(np.mean(c[4410:-4410] ** 2))) for c in out)
        balance.append(20 * np.log10(left / right))
        assert abs(side_mid_db(out[:, 4410:-4410]) - side_mid_db(stereo)) < 1.0
    assert abs(balance[0] - balance[1]) < 1.0 and max(abs(b) for b in balance) < 3.0
    rng = np.random.default_rng(3)
    common, own = rng.standard_normal((2, sr)).astype(np.float32), rng.standard_normal((2, sr)).astype(np.float32)
    noise = 0.1 * (common[0] + 0.5 * own)
    got, want = lr_correlation(decode(noise)[:, 4410:-4410]), lr_correlation(noise)
    print(f"tone balance L/R {balance[0]:.1f} / {balance[1]:.1f} dB; noise L/R correlation {got:.3f} (input {want:.3f})")
    assert abs(got - want) < 0.05
    # the same audio however many threads decode it: one clip (threads share its frames), two clips
    fm = fine_mel(np.stack([tone, 0 * tone]))
    fine2, coarse2 = np.stack([fm, fm[:, :, ::-1]]), np.stack([coarse_mel(fm[0]), coarse_mel(fm[0, :, ::-1])])
    one = decode_fine(fine2, coarse2, FINE, COARSE, [1, 2], sr, threads=1)
    np.testing.assert_array_equal(one, decode_fine(fine2, coarse2, FINE, COARSE, [1, 2], sr, threads=2))
    np.testing.assert_array_equal(one[:1], decode_fine(fine2[:1], coarse2[:1], FINE, COARSE, [1], sr, threads=2))


def test_stereo_loudness_sums_channels() -> None:
    """BS.1770: the same signal on two channels reads 3.01 dB above one channel; the true peak of
    [2, n] audio is its louder channel's."""
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal(48000 * 3)).astype(np.float32)
    one = integrated_loudness(x, 48000)
    assert integrated_loudness(np.stack([x, x]), 48000) - one == pytest.approx(3.01, abs=0.02)
    assert true_peak(np.stack([x, 0.5 * x])) == pytest.approx(true_peak(x))


def test_fine_manifest_must_be_stereo(tiny_fine_dir: Path, tmp_path: Path) -> None:
    """A fine-route manifest edited to one channel, or without its coarse representation, is refused
    with the reason and the fix."""
    d = json.loads((tiny_fine_dir / "manifest.json").read_text())
    for change in ({"channels": 1}, {"coarse": None}):
        bad = {**d, **change}
        with pytest.raises(ModelError, match="fine route.*Fix: re-export"):
            Manifest.from_dict(bad)


def test_vary_a_stereo_source_on_the_fine_route(tiny_fine_dir: Path) -> None:
    """A 2 s stereo 44.1 kHz source varied at strength 0.5 by the fine route: stereo out, the
    source's length, and different channels (the model's own image, not a copy)."""
    from n2m.bridge.edit import Source, vary

    eng = Engine.load(tiny_fine_dir, provider="cpu", threads=2)
    rng = np.random.default_rng(2)
    audio = (0.1 * rng.standard_normal((2, 88200))).astype(np.float32)
    src = Source(Path("source.wav"), audio, 44100)
    out = vary(eng, src, {"prompt": "noise", "bpm": 120.0, "seed": 1}, 0.5)
    assert len(out) == 1 and out[0].shape == (2, 88200)
    assert not np.allclose(out[0][0], out[0][1])


def test_request_type_is_shared(tiny_fine_dir: Path) -> None:
    """The engine checks a fine-route request like any other: a decoder it does not have is refused."""
    eng = Engine.load(tiny_fine_dir, provider="cpu", threads=1)
    with pytest.raises(RequestError, match="unknown decoder 'vocoder' for this model: one of griffin-lim"):
        eng.check(from_options({"prompt": "x", "decoder": "vocoder"}))


def test_fine_route_loops_are_periodic(tiny_fine_dir: Path) -> None:
    """A 2-bar loop at 100 bpm (4.8 s) on the fine route: exactly the loop's samples, both channels
    periodic by construction (the seam no sharper than the audio inside it), and the same seed
    gives the same loop."""
    from n2m.bridge.pipeline import seam_click_ratio

    eng = Engine.load(tiny_fine_dir, provider="cpu", threads=2)
    req = from_options({"prompt": "drum loop", "bpm": 100, "bars": 2, "loop": True, "seed": 4})
    clip = eng.generate(req)[0]
    assert clip.info["periodic"] and clip.audio.shape == (2, int(round(4.8 * 44100)))
    assert max(seam_click_ratio(ch) for ch in clip.audio) < 1.5
    assert np.array_equal(eng.generate(req)[0].audio, clip.audio)


def test_missing_or_corrupt_spectral_stage_names_the_file(tiny_fine_dir: Path, tmp_path: Path) -> None:
    """A copy of the fine route without spectral.onnx, then with it cut short: Engine.load names the
    file and the fix, and n2m generate says it in one line (exit 3)."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_fine_dir, model, symlinks=False)
    stage = model / Manifest.load(model).stages["spectral"].files["fp32"]
    data = stage.read_bytes()
    stage.unlink()
    with pytest.raises(ModelError, match=r"spectral\.onnx is missing.*Fix: copy the complete model folder"):
        Engine.load(model, provider="cpu")
    stage.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"spectral\.onnx is corrupt.*Fix:"):
        Engine.load(model, provider="cpu")
    r = subprocess.run([sys.executable, "-m", "n2m.bridge.cli", "generate", "x", "--model", str(model), "--out",
                        str(tmp_path / "clips"), "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1 and "spectral.onnx is corrupt" in r.stderr


def _with_spectral_guidance(src: Path, dst: Path, scale: float) -> Path:
    import shutil

    shutil.copytree(src, dst, symlinks=False)
    d = json.loads((dst / "manifest.json").read_text())
    d["stages"]["spectral"]["guidance"] = {"default": scale, "min": 0.0, "max": 15.0}
    (dst / "manifest.json").write_text(json.dumps(d))
    return dst


def test_spectral_guidance_from_the_manifest(tiny_fine_dir: Path, tmp_path: Path) -> None:
    """The spectral stage (real ONNX session) on one coarse mel: scale 0 is its unconditional pass
    alone, so "lofi piano" in C minor at 100 bpm comes out as the unguided stage given "" and no
    controls; scale 2 differs from both. The engine takes the scale from the stage's manifest entry
    and still reports progress to 1."""
    from n2m.bridge.controls import Controls
    from n2m.bridge.spectral import sample_spectral, spectral_guidance

    eng = Engine.load(tiny_fine_dir, provider="cpu", threads=1)
    spec = eng.manifest.stages["spectral"]
    assert spectral_guidance(spec) == 1.0
    stage, text = eng.cascade.stages["spectral"], eng.cascade.text
    frames = eng.cascade.frames_for(2.0)
    coarse = np.random.default_rng(0).normal(-4.0, 1.5, (1, COARSE.n_bins, frames // COARSE.pool)).astype(np.float32)
    named, blank = ([a.astype(np.float32) for a in text(p)] for p in (["lofi piano", ""], ["", ""]))
    ctl = Controls(bpm=100.0, key="C", mode="minor")

    def run(states_mask, controls, g):
        return sample_spectral(stage, spec, coarse, *states_mask, controls, [3], 3, COARSE.pool, guidance=g)

    unguided, empty = run(named, ctl, None), run(blank, Controls(), None)
    np.testing.assert_allclose(run(named, ctl, 0.0), empty, atol=1e-4)
    guided = run(named, ctl, 2.0)
    assert np.isfinite(guided).all() and guided.shape == unguided.shape
    assert np.abs(guided - unguided).max() > 1e-3 and np.abs(unguided - empty).max() > 1e-3

    two = Engine.load(_with_spectral_guidance(tiny_fine_dir, tmp_path / "g2", 2.0), provider="cpu", threads=1)
    assert spectral_guidance(two.manifest.stages["spectral"]) == 2.0
    events: list[dict] = []
    req = from_options({"prompt": "lofi piano", "seconds": 2.0, "seed": 3})
    a, b = two.generate(req, progress=events.append)[0].audio, eng.generate(req)[0].audio
    assert a.shape == b.shape == (2, 88200) and np.abs(a - b).max() > 1e-3
    assert events[-1]["fraction"] == pytest.approx(1.0)


def _with_side(src: Path, dst: Path, side: str) -> Path:
    import shutil

    shutil.copytree(src, dst, symlinks=False)
    d = json.loads((dst / "manifest.json").read_text())
    d["stages"]["spectral"]["config"]["side"] = side
    (dst / "manifest.json").write_text(json.dumps(d))
    return dst


def test_a_relative_side_stage_puts_its_side_back_on_its_mid(tiny_fine_dir: Path, tmp_path: Path) -> None:
    """The same spectral graph read as a relative-side stage (its manifest's config says so): the mid
    is unchanged and the side is the graph's side rows plus its mid rows (normalised), so in log-mel
    side_rel = side_abs + mid - mean; the engine makes a stereo clip of it. Input tried: a side mode
    this n2m does not know, refused at load with the fix."""
    from n2m.bridge.controls import Controls
    from n2m.bridge.spectral import sample_spectral

    rel_dir = _with_side(tiny_fine_dir, tmp_path / "rel", "relative")
    outs = []
    for model in (tiny_fine_dir, rel_dir):
        eng = Engine.load(model, provider="cpu", threads=1)
        spec = eng.manifest.stages["spectral"]
        frames = eng.cascade.frames_for(2.0)
        coarse = np.random.default_rng(1).normal(-4.0, 1.5, (1, COARSE.n_bins, frames // COARSE.pool))
        states, mask = (a.astype(np.float32) for a in eng.cascade.text(["lofi piano", ""]))
        outs.append(sample_spectral(eng.cascade.stages["spectral"], spec, coarse.astype(np.float32), states, mask,
                                    Controls(), [5], 3, COARSE.pool))
    (absolute, relative), mean = outs, spec.mel_norm["mean"]
    np.testing.assert_allclose(relative[:, 0], absolute[:, 0], atol=1e-6)
    np.testing.assert_allclose(relative[:, 1], absolute[:, 1] + absolute[:, 0] - mean, atol=1e-4)
    assert np.abs(relative[:, 1] - absolute[:, 1]).max() > 0.1
    clip = eng.generate(from_options({"prompt": "lofi piano", "seconds": 2.0, "seed": 5}))[0]
    assert clip.audio.shape == (2, 88200) and np.isfinite(clip.audio).all()
    with pytest.raises(ModelError, match="side 'sideways'.*Fix:"):
        Engine.load(_with_side(tiny_fine_dir, tmp_path / "bad", "sideways"), provider="cpu")
