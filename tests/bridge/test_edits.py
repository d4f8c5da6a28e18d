"""Generation from a source in the generator's space (bridge.cascade.Edit): frames held to the
source (inpainting, extension) and variations that start from the source noised to a strength."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from n2m.bridge.cascade import Edit, sample_generator
from n2m.bridge.controls import Controls, resolve
from n2m.bridge.engine import Engine, Request, RequestError
from n2m.bridge.features import MelSpec, log_mel
from n2m.bridge.grid import beat_grid

SHIPPED = Path(__file__).resolve().parents[2] / "bridge" / "models" / "default"


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return Engine.load(tiny_model_dir, provider="cpu", threads=1)


def _generator_run(engine: Engine, edit: Edit | None, sampler: str = "dpmpp_2m", frames: int = 64) -> np.ndarray:
    man = engine.manifest
    states, mask = engine._encode(["warm rhodes loop, 90 bpm", ""])
    controls = Controls(bpm=90.0)
    grid = beat_grid(frames, man.frame_rate, 90.0, None)
    return sample_generator(engine.cascade.stages["generator"], man.generator, states.astype(np.float32),
                            mask.astype(np.float32), controls, grid, [3, 4], (man.generator.channels, frames),
                            6, 3.0, sampler, edit=edit)


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp_2m", "ancestral"])
def test_held_frames_come_out_as_the_source(engine: Engine, sampler: str) -> None:
    """Frames 0-31 held, 32-63 new: every sampler ends on the source there, and the new frames
    differ from both the source and an unheld run."""
    rng = np.random.default_rng(0)
    source = rng.standard_normal((engine.manifest.generator.channels, 64)).astype(np.float32)
    known = np.arange(64) < 32
    out = _generator_run(engine, Edit(source, known), sampler)
    np.testing.assert_allclose(out[:, :, :32], np.broadcast_to(source[:, :32], out[:, :, :32].shape), atol=1e-4)
    assert np.abs(out[:, :, 32:] - source[:, 32:]).mean() > 0.1
    free = _generator_run(engine, None, sampler)
    assert not np.allclose(out[:, :, 32:], free[:, :, 32:])


def test_a_variation_moves_further_from_the_source_with_strength(engine: Engine) -> None:
    source = np.random.default_rng(1).standard_normal((engine.manifest.generator.channels, 64)).astype(np.float32)
    dist = [float(np.abs(_generator_run(engine, Edit(source, None, s)) - source).mean()) for s in (0.1, 0.4, 0.7, 1.0)]
    print("distance by strength 0.1, 0.4, 0.7, 1.0:", dist)
    assert dist == sorted(dist) and dist[0] < 0.5 * dist[-1]


def test_the_engine_takes_a_log_mel_source_and_refuses_bad_edits(engine: Engine) -> None:
    """Through Engine.generate: a 2 s log-mel as the source of a 3 s request (the rest new), and the
    refusals: strength 0 and 1.5, a source of the wrong bin count, a mask of the wrong length."""
    spec = MelSpec(**engine.manifest.mel)
    t = np.arange(32000) / 16000
    source = log_mel((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), spec)
    req = Request("warm rhodes loop", Controls(seconds=3.0), seed=5)
    known = np.ones(source.shape[1], bool)
    clip = engine.generate(req, edit=Edit(source, known, 1.0))[0]
    assert clip.audio.shape == (48000,) and np.isfinite(clip.audio).all()
    for bad, why in [(Edit(source, known, 0.0), "strength"), (Edit(source, known, 1.5), "strength"),
                     (Edit(source[:10], None, 0.5), "log-mel"), (Edit(source, known[:5], 1.0), "known marks")]:
        with pytest.raises(RequestError, match=why):
            engine.generate(req, edit=bad)


def test_variations_of_a_shipped_clip_grow_with_strength() -> None:
    """The shipped model: a generated 4 s clip varied at strengths 0.25, 0.5 and 1: the log-mel
    distance to the source (each band's mean removed) grows with strength."""
    eng = Engine.load(SHIPPED, provider="cpu")
    prompt = "lo-fi hip hop, 80 bpm, D minor"
    req = Request(prompt, resolve(prompt, Controls(seconds=4.0)), seed=2)
    src_audio = eng.generate(req)[0].audio
    src = eng.features(src_audio, eng.sample_rate)  # the generator's own log-mel of the clip

    def dist(strength: float) -> float:
        out = eng.generate(replace(req, seed=9), edit=Edit(src, None, strength))[0].audio
        m = eng.features(out, eng.sample_rate)[:, : src.shape[1]]
        a, b = m - m.mean(1, keepdims=True), src[:, : m.shape[1]] - src[:, : m.shape[1]].mean(1, keepdims=True)
        return float(np.abs(a - b).mean())

    d = [dist(s) for s in (0.25, 0.5, 1.0)]
    print("shipped model, log-mel L1 to the source by strength 0.25, 0.5, 1.0:", d)
    assert d == sorted(d)


def test_an_inpainting_joins_where_it_is_least_abrupt() -> None:
    """The splice alone (bridge.edit's join placement), on a 44.1 kHz stereo source of tone bursts
    at every beat and a 'new' region of another tone whose bursts start softly: beyond the joins'
    crossfades the output is the source's own samples (before and after) and the new audio (inside);
    each join's crossfade is one of the candidates, and no join is more abrupt than the old fixed
    20 ms linear crossfade inside the region."""
    from n2m.bridge.edit import JOIN_FADES, JOIN_OUTSIDE_S, _join_flux, _mix, _with_fade

    rate, beat = 44100, 22050
    t = np.arange(8 * beat) / rate
    env = np.exp(-np.mod(t, 0.5) * 8.0)
    soft = np.minimum(1.0, np.mod(t, 0.5) / 0.03) * env
    src = np.stack([0.4 * np.sin(2 * np.pi * 220 * t) * env, 0.3 * np.sin(2 * np.pi * 330 * t) * env]).astype(np.float32)
    new = np.stack([0.4 * np.sin(2 * np.pi * 247 * t) * soft] * 2).astype(np.float32)
    a, b = 2 * beat, 6 * beat
    w = np.zeros(src.shape[1])
    w[a:b] = 1.0
    for at, rising in ((a, True), (b, False)):
        w = min((_with_fade(w, at, rising, p, s, rate) for p, s in JOIN_FADES),
                key=lambda c: _join_flux(_mix(src, new, c), rate, at))
    y = _mix(src, new, w)
    out = int(np.ceil(JOIN_OUTSIDE_S * rate))
    longest = int(max(s for _, s in JOIN_FADES) * rate)
    assert np.array_equal(y[:, :a - out], src[:, :a - out]) and np.array_equal(y[:, b + out:], src[:, b + out:])
    assert np.allclose(y[:, a + longest:b - longest], new[:, a + longest:b - longest])
    old = np.zeros(src.shape[1])
    old[a:b] = 1.0
    x = int(0.02 * rate)
    old[a:a + x], old[b - x:b] = np.linspace(0, 1, x), np.linspace(1, 0, x)
    linear = (src * (1 - old) + new * old).astype(np.float32)
    for at in (a, b):
        assert _join_flux(y, rate, at) <= _join_flux(linear, rate, at)
