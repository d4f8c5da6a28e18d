"""The numpy samplers against an exact denoiser: data that is a single point must be recovered."""

import numpy as np
import pytest

from n2m.bridge.grid import beat_grid
from n2m.bridge.sampling import SAMPLERS
from n2m.bridge.schedule import Schedule, timesteps


def _oracle(schedule: Schedule, x_true: np.ndarray):
    """The exact v-predictor when the data distribution is a point mass at x_true."""
    def model(z, t):
        a, s = schedule.alpha_sigma(np.float64(t))
        eps = (z - a * x_true) / s
        return (a * eps - s * x_true).astype(np.float32)
    return model


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_recover_the_data_point(name):
    sched = Schedule()
    rng = np.random.default_rng(1)
    x_true = rng.standard_normal((2, 8, 16)).astype(np.float32)
    z = rng.standard_normal(x_true.shape).astype(np.float32)
    seen = []
    kwargs = {"rng": np.random.default_rng(2)} if name == "ancestral" else {}
    out = SAMPLERS[name](_oracle(sched, x_true), z, timesteps(10), sched,
                         callback=seen.append, **kwargs)
    np.testing.assert_allclose(out, x_true, atol=1e-4)
    assert [d["i"] for d in seen] == list(range(10)) and seen[-1]["n"] == 10


def test_callback_can_cancel_between_steps():
    sched = Schedule()
    x = np.zeros((1, 2, 8), np.float32)

    class Stop(Exception):
        pass

    calls = []

    def cb(d):
        calls.append(d["i"])
        if d["i"] == 2:
            raise Stop

    with pytest.raises(Stop):
        SAMPLERS["ddim"](_oracle(sched, x), np.ones_like(x), timesteps(20), sched, callback=cb)
    assert calls == [0, 1, 2]


def test_schedule_is_variance_preserving_and_monotone():
    sched = Schedule()
    t = np.linspace(0, 1, 101)
    a, s = sched.alpha_sigma(t)
    np.testing.assert_allclose(a**2 + s**2, 1.0, atol=1e-12)
    lam = sched.logsnr(t)
    assert np.all(np.diff(lam) < 0)
    assert lam[0] == pytest.approx(15.0) and lam[-1] == pytest.approx(-15.0)


def test_beat_grid_phase():
    g = beat_grid(frames=100, frame_rate=50.0, bpm=120.0, meter="4/4")
    # 120 bpm: a beat every 0.5 s = 25 frames; the bar every 100 frames
    np.testing.assert_allclose(g[0:2, 25], g[0:2, 0], atol=1e-6)
    np.testing.assert_allclose(g[:, 100 - 1], beat_grid(100, 50.0, 120.0)[:, 99], atol=1e-6)
    np.testing.assert_allclose(g[0:2, 0], [0.0, 1.0], atol=1e-6)
    assert not np.allclose(g[2:4, 25], g[2:4, 0])
    assert not beat_grid(10, 50.0, None).any()
