"""Generation from a source: a variation (SDEdit) and inpainting by replacement, in the generator's
space. bridge.cascade.sample_generator applies an `Edit` through `_Hold`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from n2m.bridge.manifest import StageSpec


@dataclass
class Edit:
    """Generation from a source in the generator's space (normalised, [C, N] at the grid rate):
    frames where `known` is True are held to the source (inpainting: the model sees them noised to
    each step's level and the sampler's estimate of them is the source), and sampling starts at
    diffusion time `strength` from the source noised to it (a variation; 1 = a new clip)."""

    source: np.ndarray
    known: np.ndarray | None = None  # bool [N]; None = nothing held
    strength: float = 1.0


class _Hold:
    """Inpainting by replacement, through v: the model sees the known frames as the source noised
    to the step's level, and v is set there so that the sampler's clean estimate is the source."""

    def __init__(self, edit: Edit, spec: StageSpec, z: np.ndarray, rngs: list[np.random.Generator]) -> None:
        src = np.asarray(edit.source, np.float32)
        if src.shape != z.shape[1:]:
            raise ValueError(f"the source is {src.shape}, the generator works on {z.shape[1:]}")
        if not 0.0 < float(edit.strength) <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {edit.strength!r}")
        self.source = np.broadcast_to(src, z.shape).astype(np.float32)
        self.known = None if edit.known is None else np.asarray(edit.known, bool)
        if self.known is not None and self.known.shape != (z.shape[-1],):
            raise ValueError(f"known marks {self.known.shape} frames, the generator works on {z.shape[-1]}")
        self.noise = np.stack([r.standard_normal(z.shape[1:], dtype=np.float32) for r in rngs])
        self.schedule = spec.schedule_obj()

    def inputs(self, z: np.ndarray, t: float) -> np.ndarray:
        if self.known is None or not self.known.any():
            return z
        a, s = self.schedule.alpha_sigma(np.float64(t))
        z = z.copy()
        k = self.known
        z[..., k] = (float(a) * self.source[..., k] + float(s) * self.noise[..., k]).astype(np.float32)
        return z

    def held(self, z: np.ndarray, v: np.ndarray, t: float) -> np.ndarray:
        if self.known is None or not self.known.any():
            return v
        a, s = self.schedule.alpha_sigma(np.float64(t))
        v = v.copy()
        k = self.known  # x0 = a z - s v  =>  v = (a z - x0) / s
        v[..., k] = ((float(a) * z[..., k] - self.source[..., k]) / max(float(s), 1e-6)).astype(np.float32)
        return v
