"""Numpy samplers for v-prediction diffusion, one plain function each (k-diffusion style).

`model(z, t) -> v` is any callable (an ONNX session with guidance applied, or a torch module
wrapped to numpy). Each sampler walks `ts` (from `schedule.timesteps`, 1 -> 0) and calls
`callback({'i', 'n', 't', 'denoised'})` after every step: the hook for progress bars, OSC progress
and cancellation (a callback that raises stops the sampler between steps).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from n2m.bridge.schedule import Schedule, predict_x0_eps

Model = Callable[[np.ndarray, float], np.ndarray]
Callback = Callable[[dict], None] | None


def _alpha_sigma(schedule: Schedule, t: float) -> tuple[float, float]:
    if t <= 0.0:
        return 1.0, 0.0
    a, s = schedule.alpha_sigma(np.float64(t))
    return float(a), float(s)


def sample_ddim(model: Model, z: np.ndarray, ts: np.ndarray, schedule: Schedule,
                callback: Callback = None, eta: float = 0.0,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """DDIM (eta = 0, deterministic); eta = 1 is the ancestral DDPM sampler."""
    n = len(ts) - 1
    for i in range(n):
        t, s = float(ts[i]), float(ts[i + 1])
        v = model(z, t)
        x0, eps = predict_x0_eps(schedule, z, v, t)
        a_s, s_s = _alpha_sigma(schedule, s)
        if s_s == 0.0:
            z = x0
        else:
            a_t, s_t = _alpha_sigma(schedule, t)
            noise_sd = 0.0
            if eta > 0.0:
                noise_sd = eta * (s_s / s_t) * np.sqrt(max(0.0, 1.0 - (a_t * s_s / (a_s * s_t)) ** 2))
            dir_sd = np.sqrt(max(0.0, s_s**2 - noise_sd**2))
            z = a_s * x0 + dir_sd * eps
            if noise_sd > 0.0:
                if rng is None:
                    raise ValueError("the ancestral sampler needs an rng")
                z = z + noise_sd * rng.standard_normal(z.shape, dtype=np.float32)
        z = z.astype(np.float32, copy=False)
        if callback is not None:
            callback({"i": i, "n": n, "t": t, "denoised": x0})
    return z


def sample_ancestral(model: Model, z: np.ndarray, ts: np.ndarray, schedule: Schedule,
                     callback: Callback = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Ancestral sampling as in the Noise2Music paper (DDPM posterior steps)."""
    return sample_ddim(model, z, ts, schedule, callback, eta=1.0, rng=rng)


def sample_dpmpp_2m(model: Model, z: np.ndarray, ts: np.ndarray, schedule: Schedule,
                    callback: Callback = None) -> np.ndarray:
    """DPM-Solver++(2M) (Lu et al. 2022), data prediction, multistep, deterministic."""
    n = len(ts) - 1
    x0_prev = None
    h_prev = None
    for i in range(n):
        t, s = float(ts[i]), float(ts[i + 1])
        v = model(z, t)
        x0, _ = predict_x0_eps(schedule, z, v, t)
        a_t, s_t = _alpha_sigma(schedule, t)
        a_s, s_s = _alpha_sigma(schedule, s)
        if s_s == 0.0:
            z = x0
        else:
            lam_t, lam_s = np.log(a_t / s_t), np.log(a_s / s_s)
            h = lam_s - lam_t
            if x0_prev is None or h_prev is None:
                d = x0
            else:
                r = h_prev / h
                d = (1.0 + 1.0 / (2.0 * r)) * x0 - (1.0 / (2.0 * r)) * x0_prev
            z = (s_s / s_t) * z - a_s * np.expm1(-h) * d
            h_prev = h
        x0_prev = x0
        z = z.astype(np.float32, copy=False)
        if callback is not None:
            callback({"i": i, "n": n, "t": t, "denoised": x0})
    return z


SAMPLERS = {"ddim": sample_ddim, "dpmpp_2m": sample_dpmpp_2m, "ancestral": sample_ancestral}
