"""The engine on the waveform route (wavegen -> cascader) and with a superres stage (48 kHz), on
real exported tiny cascades (tests/conftest.py: tiny_wave_dir, tiny_wave_superres_dir,
tiny_mel_superres_dir)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from n2m.bridge.cascade import superres_band
from n2m.bridge.controls import Controls, resolve
from n2m.bridge.engine import (
    Cancelled,
    Engine,
    ModelError,
    Request,
    RequestError,
)
from n2m.bridge.manifest import MANIFEST_NAME, Manifest
from n2m.bridge.resample import keep_low_band, upsample

PROMPT = "dusty boom-bap beat with rhodes chords, 88 bpm, A minor"


def req(seconds: float = 2.0, **kw) -> Request:
    controls = resolve(PROMPT, Controls(seconds=seconds))
    return Request(prompt=PROMPT, controls=controls, seed=kw.pop("seed", 11), **kw)


@pytest.fixture(scope="module")
def wave(tiny_wave_dir: Path) -> Engine:
    return Engine.load(tiny_wave_dir, provider="cpu", threads=1)


@pytest.fixture(scope="module")
def wave_sr(tiny_wave_superres_dir: Path) -> Engine:
    return Engine.load(tiny_wave_superres_dir, provider="cpu", threads=1)


def _stages(events: list[dict]) -> list[str]:
    out: list[str] = []
    for e in events:
        if not out or out[-1] != e["stage"]:
            out.append(e["stage"])
    return out


def test_wave_route_generates_16k_clips_with_progress(wave: Engine) -> None:
    assert wave.manifest.route == "wave" and wave.manifest.superres is None
    events: list[dict] = []
    clip = wave.generate(req(2.5), progress=events.append)[0]
    assert clip.sample_rate == wave.sample_rate == 16000
    assert clip.audio.shape == (int(2.5 * 16000),) and clip.audio.dtype == np.float32
    assert np.isfinite(clip.audio).all() and float(np.abs(clip.audio).max()) > 0
    assert clip.info["route"] == "wave" and clip.info["cascader_steps"] == 3
    assert _stages(events) == ["text", "wavegen", "cascader"]
    assert [e["step"] for e in events if e["stage"] == "wavegen"] == [0, 1, 2, 3, 4]
    assert [e["step"] for e in events if e["stage"] == "cascader"] == [0, 1, 2, 3]
    fractions = [e["fraction"] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)


def test_superres_makes_48k_clips(wave_sr: Engine) -> None:
    events: list[dict] = []
    clips = wave_sr.generate(req(2.0, seed=4, variations=2), progress=events.append)
    assert wave_sr.sample_rate == 48000 and wave_sr.manifest.hop == 960
    for c in clips:
        assert c.sample_rate == 48000 and c.audio.shape == (96000,) and np.isfinite(c.audio).all()
    assert _stages(events) == ["text", "wavegen", "cascader", "superres"]
    assert [e["step"] for e in events if e["stage"] == "superres"] == [0, 1, 2]
    assert [e["fraction"] for e in events] == sorted(e["fraction"] for e in events)
    assert events[-1]["fraction"] == pytest.approx(1.0)
    # deterministic for a seed, and a variation reproduces alone
    alone = wave_sr.generate(req(2.0, seed=5))[0]
    np.testing.assert_allclose(clips[1].audio, alone.audio, atol=1e-4)
    np.testing.assert_array_equal(alone.audio, wave_sr.generate(req(2.0, seed=5))[0].audio)
    assert not np.allclose(clips[0].audio, clips[1].audio)


def test_mel_route_with_superres(tiny_mel_superres_dir: Path) -> None:
    e = Engine.load(tiny_mel_superres_dir, provider="cpu", threads=1)
    assert e.manifest.route == "mel" and e.sample_rate == 48000
    for decoder in ("vocoder", "griffin-lim"):
        events: list[dict] = []
        clip = e.generate(req(2.0, seed=2, decoder=decoder), progress=events.append)[0]
        assert clip.sample_rate == 48000 and clip.audio.shape == (96000,) and np.isfinite(clip.audio).all()
        assert _stages(events)[-1] == "superres"


def test_wave_route_matches_the_torch_runners(wave_sr: Engine, tiny_wave_checkpoints) -> None:
    """Tokenizer, ONNX text encoder, guidance batching, samplers, the shared upsampler and the
    conditioning's noise augmentation: the engine against the training-side torch runners."""
    from n2m.exporter.models.pipeline import (
        AudioCascaderRunner,
        GeneratorRunner,
        SampleOptions,
        load_checkpoint,
    )
    from n2m.exporter.textenc import TextCache

    man = wave_sr.manifest
    prompt = "warm lofi piano in F# minor, 72 bpm, 3/4"
    controls = resolve(prompt, Controls(seconds=2.0))
    clip = wave_sr.generate(Request(prompt, controls, seed=3))[0]
    models = {s: load_checkpoint(p)[0] for s, p in tiny_wave_checkpoints.items()}
    frames = wave_sr.frames_for(2.0)
    low = GeneratorRunner(models["wavegen"], TextCache()).generate(
        prompt, controls, frames, seed=3, opts=SampleOptions(steps=4, guidance=3.0, sampler="dpmpp_2m"))
    mid = AudioCascaderRunner(models["cascader"]).run(low, seed=3, steps=3, sampler="dpmpp_2m",
                                                      aug=man.stages["cascader"].cond_aug)
    hi = AudioCascaderRunner(models["superres"]).run(mid, seed=3, steps=2, sampler="dpmpp_2m",
                                                     aug=man.stages["superres"].cond_aug)
    # the runtime keeps the 16 kHz audio's own band below the crossover, the stage's output above it
    hi = keep_low_band(upsample(mid, 3), hi, 48000, *superres_band(16000))
    ref = hi[: clip.audio.shape[0]] * 10 ** (clip.info["headroom_gain_db"] / 20)
    assert np.abs(clip.audio - ref).max() < 1e-3 * max(1.0, float(np.abs(ref).max()))


def test_cancel_between_cascader_and_superres_steps(wave_sr: Engine) -> None:
    for stage in ("cascader", "superres"):
        cancel = threading.Event()
        seen: list[dict] = []

        def progress(e: dict, stage=stage, cancel=cancel, seen=seen) -> None:
            seen.append(e)
            if e["stage"] == stage and e["step"] == 1:
                cancel.set()

        with pytest.raises(Cancelled, match=f"between {stage} steps"):
            wave_sr.generate(req(), progress=progress, cancel=cancel)
        assert max(e["step"] for e in seen if e["stage"] == stage) == 1
    assert wave_sr.generate(req())[0].audio.size == 96000  # usable afterwards


def test_griffin_lim_is_refused_on_the_wave_route(wave: Engine) -> None:
    with pytest.raises(RequestError, match="wave route"):
        wave.generate(req(decoder="griffin-lim"))


def test_clip_pipeline_takes_48k_clips_to_the_daws_rate(wave_sr: Engine) -> None:
    from n2m.bridge.pipeline import PipelineOptions, process_clip

    clip = wave_sr.generate(req(2.0))[0]
    out = process_clip(clip, PipelineOptions(sample_rate=44100))
    assert out.sample_rate == 44100 and np.isfinite(out.audio).all()
    assert abs(len(out.audio) / 44100 - 2.0) < 0.1


@pytest.mark.parametrize("which", ["wave", "mel+superres"])
def test_routes_without_periodic_loops_crossfade_them(wave: Engine, tiny_mel_superres_dir: Path, which: str) -> None:
    """A loop of 1 bar at 120 bpm asked of the wave route and of the mel route with superres (no
    circle through their audio stages): the engine makes a one-shot, the pipeline crossfades it."""
    from n2m.bridge.pipeline import PipelineOptions, process_clip

    e = wave if which == "wave" else Engine.load(tiny_mel_superres_dir, provider="cpu", threads=1)
    out = PipelineOptions(bpm=120.0, bars=1, loop=True)
    r = Request(prompt=PROMPT, controls=Controls(bpm=120.0, bars=1), seed=3, output=out)
    assert not e.periodic_loops and e.loop_seconds(r, 2.0) is None
    clip = e.generate(r)[0]
    done = process_clip(clip, out)
    assert clip.info["periodic"] is False and done.loop_seam == "crossfade" and len(done.audio) == 96000


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).symlink_to(f.resolve())
    (dst / MANIFEST_NAME).unlink()
    (dst / MANIFEST_NAME).write_text((src / MANIFEST_NAME).read_text())
    return dst


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m["stages"].pop("cascader"),
         r"route 'wave' needs a 'cascader' stage.*Fix: export the whole route with "
         r"`n2m export --wavegen W\.pt --cascader C\.pt"),
        (lambda m: m.update(route="spectral"), "route 'spectral' is not one of mel, wave"),
        (lambda m: m["stages"].update(vocoder=m["stages"]["cascader"]), r"do not belong to route 'wave'"),
        (lambda m: m["stages"]["superres"].update(cond_rate=22050.0), "superres is conditioned on 22050"),
        (lambda m: m.update(sample_rate=16000), "not the last stage's rate"),
        (lambda m: m.update(default_decoder="griffin-lim"), "no log-mel to decode"),
        (lambda m: m.update(hop=320), "hop 320 at 50 frames/s is not 48000 Hz"),
        (lambda m: m["stages"]["cascader"].update(cond_rate=4000.0), "conditioned on 4000 Hz audio"),
    ],
)
def test_bad_wave_manifests_name_the_fix(tiny_wave_superres_dir: Path, tmp_path: Path, edit, match) -> None:
    model = _copy(tiny_wave_superres_dir, tmp_path / "model")
    d = json.loads((model / MANIFEST_NAME).read_text())
    edit(d)
    (model / MANIFEST_NAME).write_text(json.dumps(d))
    with pytest.raises(ModelError, match=match) as err:
        Engine.load(model, provider="cpu", threads=1)
    assert "Fix:" in str(err.value)
    with pytest.raises(ModelError):
        Manifest.load(model)


def test_mel_manifest_without_route_field_is_the_mel_route(tiny_model_dir: Path) -> None:
    d = json.loads((tiny_model_dir / MANIFEST_NAME).read_text())
    d.pop("route", None)
    for s in d["stages"].values():
        s.pop("cond_rate", None)
        s.pop("cond_aug", None)
    m = Manifest.from_dict(d)
    assert m.route == "mel" and m.stage_names == ["generator", "vocoder"] and m.generator is m.stages["generator"]
