"""The fine route's cascader and decoder: COARSE mel -> FINE mid + side mel -> stereo audio.

    fine = sample_spectral(stage, spec, coarse, states, mask, controls, seeds, steps)  # [n, 2, 192, 2F]
    stereo = decode_fine(fine, coarse, FINE, COARSE, seeds, samples, threads)          # [n, 2, samples]

The generator makes the COARSE mel (the mid's FINE mel below 8 kHz at 50 frames/s). The spectral
cascader, a text-conditioned diffusion U-Net, makes the whole FINE mel of the mid and of the side
at 100 frames/s from it (noise-augmented conditioning, as in Noise2Music). The crossover keeps the
generator's band: below 8 kHz the mid's power over each pair of frames is set to the coarse
frame's, so the cascader adds timing detail there and the band above it, never other notes.
Griffin-Lim then reconstructs mid and side, and L = M + S, R = M - S.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from n2m.bridge.features import CoarseSpec, MelSpec, pool_log_mel
from n2m.bridge.grid import beat_grid
from n2m.bridge.manifest import StageSpec

SPECTRAL = "spectral"


def spectral_cond(coarse: np.ndarray, spec: StageSpec, pool: int) -> np.ndarray:
    """[n, coarse bins, frames * pool] the coarse log-mel repeated to the fine frame rate and
    normalised as the spectral stage was trained."""
    up = np.repeat(np.asarray(coarse, np.float32), pool, axis=-1)
    return ((up - spec.mel_norm["mean"]) / spec.mel_norm["scale"]).astype(np.float32)


def sample_spectral(stage, spec: StageSpec, coarse: np.ndarray, states: np.ndarray, mask: np.ndarray,
                    controls: Any, seeds: list[int], steps: int, pool: int, hooks=None,
                    sampler: str | None = None) -> np.ndarray:
    """[n, 2, fine bins, frames * pool] fine log-mel (mid, side) from [n, coarse bins, frames]
    coarse log-mel. Per row the seed draws the conditioning's augmentation noise, then the
    initial noise; the prompt's text states condition every row (no guidance)."""
    from n2m.bridge.cascade import NO_HOOKS, _sample, generator_cond

    hooks = hooks or NO_HOOKS
    n, frames = coarse.shape[0], coarse.shape[-1] * pool
    clean = spectral_cond(coarse, spec, pool)
    rngs = [np.random.default_rng(s) for s in seeds]
    noise = np.stack([r.standard_normal(clean.shape[1:], dtype=np.float32) for r in rngs])
    aug = np.full((n,), float(spec.cond_aug), np.float64)
    cond = spec.schedule_obj().add_noise(clean, noise, aug).astype(np.float32)
    grid = beat_grid(frames, spec.rate, controls.bpm, controls.meter)
    kw = generator_cond(states, mask, controls, grid, n, guided=False)
    kw["cond"] = np.ascontiguousarray(cond)

    def model(x: np.ndarray, t: float) -> np.ndarray:
        hooks.check_cancel(f"between {spec.name} steps")
        return stage(x, np.full((n,), t, np.float32), **kw)

    x = np.stack([r.standard_normal((spec.channels, frames), dtype=np.float32) for r in rngs])
    out = _sample(spec.name, model, x, steps, spec, sampler or spec.default_sampler, rngs, hooks)
    fine = out * spec.mel_norm["scale"] + spec.mel_norm["mean"]
    return fine.reshape(n, 2, spec.channels // 2, frames).astype(np.float32)


def keep_coarse_band(fine_mid: np.ndarray, coarse: np.ndarray, spec: CoarseSpec) -> np.ndarray:
    """The mid's fine log-mel with its first `spec.n_bins` bins moved so that their power over each
    group of `spec.pool` frames is the coarse frame's: the generator's notes, the cascader's timing."""
    out = np.array(fine_mid, dtype=np.float32, copy=True)
    b, frames = spec.n_bins, out.shape[-1]
    for i in range(out.shape[0]):
        pooled = pool_log_mel(out[i, :b], spec.pool)
        shift = np.repeat(np.asarray(coarse[i], np.float32)[:, : pooled.shape[1]] - pooled, spec.pool, axis=-1)
        out[i, :b] += shift[:, :frames]
    return out


def decode_fine(fine: np.ndarray, coarse: np.ndarray | None, mel: MelSpec, coarse_spec: CoarseSpec,
                seeds: list[int], samples: int, threads: int, mel_max: float | None = None) -> np.ndarray:
    """[n, 2, samples] stereo audio from [n, 2, bins, frames] fine log-mel (mid, side): the coarse
    band kept (when `coarse` is given), clamped to the corpus' loudest value, Griffin-Lim per
    channel, then left = mid + side, right = mid - side."""
    from n2m.bridge.cascade import decode_griffin_lim

    fine = np.array(fine, dtype=np.float32, copy=True)
    n = fine.shape[0]
    if coarse is not None:
        fine[:, 0] = keep_coarse_band(fine[:, 0], coarse, coarse_spec)
    if mel_max is not None:
        np.clip(fine, float(np.log(mel.log_floor)), float(mel_max), out=fine)
    # the floor is "this quiet or quieter": reconstructed as silence, not as a noise floor (a
    # centred mix's side sits at the floor and would otherwise come back as hiss)
    fine = np.log(np.maximum(np.exp(fine) - mel.log_floor, 1e-12)).astype(np.float32)
    rows = fine.reshape(2 * n, *fine.shape[2:])
    audio = decode_griffin_lim(rows, mel, [s for s in seeds for _ in (0, 1)], samples, threads)
    mid, side = audio.reshape(n, 2, -1)[:, 0], audio.reshape(n, 2, -1)[:, 1]
    return np.stack([mid + side, mid - side], axis=1).astype(np.float32)
