"""The noise schedule and parameterisation, defined once for training (torch) and runtime (numpy).

Continuous time t in [0, 1], t = 1 pure noise. A cosine schedule expressed in log-SNR with the
ends clipped (Kingma et al. 2021; Hoogeboom et al. 2023, "simple diffusion"):

    logsnr(t) = -2 log tan(a t + b) + 2 shift,   alpha^2 = sigmoid(logsnr), sigma^2 = sigmoid(-logsnr)

so z_t = alpha x + sigma eps, and the networks predict v = alpha eps - sigma x (v-prediction).
Every function accepts numpy arrays or torch tensors and returns the same kind: training calls
them on tensors, the runtime on arrays, and tests check that both agree. This module never
imports torch; it uses the tensor's own module when it is handed a tensor.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass

import numpy as np


def _xp(x):
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        return sys.modules["torch"]
    return np


@dataclass(frozen=True)
class Schedule:
    kind: str = "cosine-logsnr"
    parameterization: str = "v"
    logsnr_min: float = -15.0
    logsnr_max: float = 15.0
    shift: float = 0.0  # added to log-SNR / 2 (negative = noisier, for long sequences)

    @property
    def _b(self) -> float:
        return math.atan(math.exp(-0.5 * self.logsnr_max))

    @property
    def _a(self) -> float:
        return math.atan(math.exp(-0.5 * self.logsnr_min)) - self._b

    def logsnr(self, t):
        xp = _xp(t)
        return -2.0 * xp.log(xp.tan(self._a * t + self._b)) + 2.0 * self.shift

    def alpha_sigma(self, t):
        """(alpha, sigma) with alpha^2 + sigma^2 = 1."""
        xp = _xp(t)
        lam = self.logsnr(t)
        if xp is np:
            alpha = np.sqrt(1.0 / (1.0 + np.exp(-lam)))
            sigma = np.sqrt(1.0 / (1.0 + np.exp(lam)))
        else:
            alpha = xp.sqrt(xp.sigmoid(lam))
            sigma = xp.sqrt(xp.sigmoid(-lam))
        return alpha, sigma

    def add_noise(self, x, eps, t):
        """z_t for clean x and noise eps; t broadcast over x's trailing axes."""
        alpha, sigma = self.alpha_sigma(t)
        shape = (-1,) + (1,) * (x.ndim - 1)
        return alpha.reshape(shape) * x + sigma.reshape(shape) * eps

    def v_target(self, x, eps, t):
        alpha, sigma = self.alpha_sigma(t)
        shape = (-1,) + (1,) * (x.ndim - 1)
        return alpha.reshape(shape) * eps - sigma.reshape(shape) * x

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Schedule:
        s = cls(**d)
        if s.kind != "cosine-logsnr" or s.parameterization != "v":
            raise ValueError(f"unsupported schedule {s.kind}/{s.parameterization}")
        return s


def predict_x0_eps(schedule: Schedule, z: np.ndarray, v: np.ndarray, t: float):
    """Clean estimate and noise estimate from a v prediction at time t."""
    alpha, sigma = schedule.alpha_sigma(np.float64(t))
    return alpha * z - sigma * v, sigma * z + alpha * v


def timesteps(steps: int) -> np.ndarray:
    """steps + 1 times from 1 (noise) to 0 (data), uniform in t."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    return np.linspace(1.0, 0.0, steps + 1)
