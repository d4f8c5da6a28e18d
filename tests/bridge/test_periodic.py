"""Periodic loops by construction (bridge.periodic): the circle's windows with fake stages, the
cascade's loop plan without ONNX, circular Griffin-Lim and periodic resampling. No model runs here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from n2m.bridge.cascade import Cascade, Plan, sample_generator
from n2m.bridge.controls import Controls
from n2m.bridge.features import MelSpec, log_mel
from n2m.bridge.griffinlim import griffin_lim
from n2m.bridge.manifest import Manifest
from n2m.bridge.periodic import Circle, circle_frames, resample_periodic, whole_bars_seconds
from n2m.bridge.pipeline import seam_click_ratio

SHIPPED = Path(__file__).resolve().parents[2] / "bridge" / "models" / "default"


def position_stage(x: np.ndarray, t: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A stand-in U-Net that is not shift-invariant: v depends on the frame's place in the window
    (a ramp), on its right neighbour (zero past the window's end) and on the grid."""
    n = x.shape[-1]
    right = np.concatenate([x[..., 1:], np.zeros_like(x[..., :1])], axis=-1)
    ramp = np.linspace(1.0, 2.0, n, dtype=np.float32)
    return (x * ramp + 0.5 * right + 0.1 * np.repeat(grid[:, :1], x.shape[-1] // grid.shape[-1], -1)
            ).astype(np.float32)


@pytest.mark.parametrize("frames,multiple,per,shift", [(37, 8, 1, 5), (37, 8, 3, 30), (45, 8, 1, 44), (40, 8, 2, 9)])
def test_rolled_input_gives_rolled_output(frames: int, multiple: int, per: int, shift: int) -> None:
    """A circle of 37, 45 or 40 frames (windows of 40, 48, 40), 1-3 samples per frame, 4 rows of
    which the last 2 are guidance's repeat: rolling the input and the grid by `shift` frames, with
    the window starts moved by as much, rolls the output by as much: no frame of the circle is
    special, only where the windows start."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, frames * per)).astype(np.float32)
    grid = rng.standard_normal((4, 4, frames)).astype(np.float32)
    t = np.full(4, 0.5, np.float32)
    starts = np.array([7.5, 20.5]) / frames
    for call in range(3):  # the same walk on both circles: each call's windows start elsewhere
        a, b = Circle(frames, multiple, starts), Circle(frames, multiple, (starts + shift / frames) % 1.0)
        a.calls = b.calls = call
        va = a.wrap(position_stage, ("grid",))(x, t, grid=grid)
        vb = b.wrap(position_stage, ("grid",))(np.roll(x, shift * per, -1), t, grid=np.roll(grid, shift, -1))
        assert va.shape == x.shape
        np.testing.assert_allclose(vb, np.roll(va, shift * per, -1), rtol=0, atol=1e-6)
    # and the windows do start somewhere else every call
    c = Circle.from_seeds(frames, multiple, [3])
    starts_seen = []
    for _ in range(25):
        starts_seen.append(int(c.offsets()[0]))
        c.calls += 1
    assert len(set(starts_seen)) >= 20, starts_seen


def test_the_frames_a_window_covers_twice_get_the_mean() -> None:
    """A circle of 37 frames seen through windows of 40 from frame 30: a stage returning each
    frame's place in its window gives place (p - 30) mod 37 on the circle, and the mean of the two
    places (j and 37 + j) on the 3 frames 30-32 the window reads twice; an identity stage gives the
    input back unchanged."""
    c = Circle(37, 8, np.array([30.5 / 37]))
    seen = []

    def place(x: np.ndarray, t: np.ndarray) -> np.ndarray:
        seen.append(x.shape[-1])
        return np.broadcast_to(np.arange(x.shape[-1], dtype=np.float32), x.shape).copy()

    v = c.wrap(place, ())(np.zeros((1, 2, 37), np.float32), np.zeros(1, np.float32))
    want = ((np.arange(37) - 30) % 37).astype(np.float32)
    want[30:33] = (np.arange(3) + (np.arange(3) + 37)) / 2.0
    assert seen == [40]
    np.testing.assert_array_equal(v[0, 0], want)
    x = np.random.default_rng(1).standard_normal((2, 5, 37 * 4)).astype(np.float32)
    c2 = Circle(37, 8, np.array([0.1, 0.9]))
    np.testing.assert_allclose(c2.wrap(lambda x, t: x, ())(x, np.zeros(2, np.float32)), x, atol=1e-6)


def _smoothing_stage(seen: list[tuple[int, ...]], schedule):
    """A fake generator that "denoises" by smoothing over 9 frames with zeros past the window's
    edges (as a U-Net's padding does), so the window's edges leave a mark."""
    kernel = np.ones(9, np.float32) / 9.0

    def stage(x: np.ndarray, t: np.ndarray, **cond: np.ndarray) -> np.ndarray:
        seen.append(x.shape)
        assert x.shape[-1] % 8 == 0 and cond["grid"].shape[-1] == x.shape[-1]
        x0 = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), -1, x)
        a, s = (float(v) for v in schedule.alpha_sigma(np.float64(t[0])))
        return ((a * x - x0) / max(s, 1e-3)).astype(np.float32)  # v for x0 = a z - s v

    return stage


def test_a_looped_generator_output_runs_on_over_its_seam() -> None:
    """sample_generator on a smoothing stand-in, 45 frames (not a multiple of 8), 2 seeds, 12
    ddim steps, guidance 3: as a loop, the jump from the last frame to the first is like the jumps
    between neighbours inside; generated plainly (48 frames cut to 45) it is a cut between unrelated
    ends. The stage only ever sees 48-frame windows; the same seeds give the same loop."""
    man = Manifest.load(SHIPPED)
    spec = man.generator
    states, mask = np.zeros((2, 4, 384), np.float32), np.ones((2, 4), np.float32)
    controls = Controls(bpm=120.0, meter="4/4")
    seen: list[tuple[int, ...]] = []

    def run(loop: bool, frames: int) -> np.ndarray:
        grid = np.zeros((4, frames), np.float32)
        return sample_generator(_smoothing_stage(seen, spec.schedule_obj()), spec, states, mask, controls, grid, [5, 6],
                                (spec.channels, frames), 12, 3.0, "ddim", loop=loop)

    loop = run(True, 45)
    plain = run(False, 48)[..., :45]
    assert loop.shape == (2, spec.channels, 45)
    assert {s[-1] for s in seen} == {48}
    np.testing.assert_array_equal(loop, run(True, 45))

    def seam_over_inner(y: np.ndarray) -> float:
        inner = np.abs(np.diff(y, axis=-1)).mean()
        return float(np.abs(y[..., 0] - y[..., -1]).mean() / inner)

    print(f"seam jump / inner jumps: loop {seam_over_inner(loop):.2f}, plain cut {seam_over_inner(plain):.2f}")
    assert seam_over_inner(loop) < 1.5 < 3.0 < seam_over_inner(plain)


def test_a_loop_plan_through_the_cascade_with_fake_stages() -> None:
    """The shipped manifest's cascade with a fake text encoder and a fake generator, no ONNX: 4
    bars at 93 bpm in 3/4 (7.742 s, 387.1 grid frames) is a circle of 387 frames seen through
    392-frame windows that start somewhere new each of the 10 steps; every window's bar phase
    advances evenly across the circle's end, so the beats stay on the bars; Griffin-Lim decodes
    exactly 387 hops."""
    man = Manifest.load(SHIPPED)
    seconds = 4 * 3 * 60.0 / 93.0
    starts, steps = [], []

    def generator(x: np.ndarray, t: np.ndarray, **cond: np.ndarray) -> np.ndarray:
        g = cond["grid"][0]
        steps.append(x.shape[-1])
        bar = np.unwrap(np.arctan2(g[2], g[3]))
        starts.append(round(float(bar[0] % (2 * np.pi)), 6))
        np.testing.assert_allclose(np.diff(bar), 2 * np.pi / (387 / 4), atol=1e-4)
        return np.zeros_like(x)

    def text(prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((len(prompts), 4, 384), np.float32), np.ones((len(prompts), 4), np.int64)

    def spectral(x: np.ndarray, t: np.ndarray, **cond: np.ndarray) -> np.ndarray:
        assert x.shape[-1] % 8 == 0 and cond["cond"].shape[-1] == x.shape[-1]  # its own circle's windows
        return np.zeros_like(x)

    cascade = Cascade(man, text, {"generator": generator, "spectral": spectral})
    plan = Plan("waltz", Controls(bpm=93.0, meter="3/4"), 3, 1, 10, 3.0, "ddim", seconds, "griffin-lim", loop=True)
    audio, info = cascade.run(plan)
    assert circle_frames(seconds, man.frame_rate) == info["frames"] == 387
    assert steps == [392] * 10 and len(set(starts)) == 10
    assert audio.shape[0] == 1 and audio.shape[-1] == 387 * man.hop


def test_whole_bars_seconds() -> None:
    """7 s at 120 bpm in 4/4 (2 s bars) -> 4 bars (8 s); 30 s at 40 bpm in 3/4 (4.5 s bars) is 7
    bars = 31.5 s, past a 30 s limit -> 6 bars; 1 s at 40 bpm in 4/4 (6 s bars) -> one bar; 6/8
    bars are 3 quarters; free time keeps its seconds."""
    assert whole_bars_seconds(7.0, 120.0, None, 2.0, 30.0) == 8.0
    assert whole_bars_seconds(30.0, 40.0, "3/4", 2.0, 30.0) == 27.0
    assert whole_bars_seconds(1.0, 40.0, "4/4", 2.0, 30.0) == 6.0
    assert whole_bars_seconds(5.0, 120.0, "6/8", 2.0, 30.0) == 4.5
    assert whole_bars_seconds(9.3, None, "3/4", 2.0, 30.0) == 9.3


@pytest.mark.parametrize("m,n", [(100, 300), (101, 300), (300, 101), (128000, 384000), (127999, 384001), (400, 401)])
def test_periodic_resampling_keeps_whole_cycles_whole(m: int, n: int) -> None:
    """One period of cosines with 1, 7 and just under half the shorter length's cycles, m samples
    -> n samples: the same cycles over n samples, to float32 precision; the end still meets the start."""
    short = min(m, n)
    for k in (1, 7, (short - 1) // 2):
        x = np.cos(2 * np.pi * k * np.arange(m) / m + 0.3)
        want = np.cos(2 * np.pi * k * np.arange(n) / n + 0.3)
        np.testing.assert_allclose(resample_periodic(x, n), want, atol=1e-6)


def test_circular_griffin_lim_has_no_seam() -> None:
    """The log-mel of one period of a 137-frame loop (two tones a whole number of cycles long,
    pulsing three times a loop), decoded by Griffin-Lim with seeds 0-3: circular, the wrap from the
    last sample to the first is no sharper than the sharpest point inside (click ratio <= 1);
    decoded as a one-shot and cut, the same log-mel clicks at the seam."""
    spec, frames = MelSpec(), 137
    n = frames * spec.hop
    t = np.arange(n) / spec.sample_rate
    f1, f2 = (round(f * n / spec.sample_rate) * spec.sample_rate / n for f in (220.0, 277.2))
    x = 0.2 * (np.sin(2 * np.pi * f1 * t) + np.sin(2 * np.pi * f2 * t)) * (1 + 0.5 * np.cos(6 * np.pi * t / t[-1]))
    mel = log_mel(np.tile(x.astype(np.float32), 3), spec)[:, frames:2 * frames]
    for seed in range(4):
        circ = griffin_lim(mel, spec, seed=seed, circular=True)
        cut = griffin_lim(mel, spec, seed=seed, length=n)
        print(f"seed {seed}: click ratio circular {seam_click_ratio(circ):.2f}, one-shot cut {seam_click_ratio(cut):.2f}")
        assert len(circ) == n and seam_click_ratio(circ) <= 1.0 < 3.0 < seam_click_ratio(cut)
