"""The fine route's cascader and decoder: COARSE mel -> FINE mid + side mel -> stereo audio.

    fine = sample_spectral(stage, spec, coarse, states, mask, controls, seeds, steps)  # [n, 2, 192, 2F]
    stereo = decode_fine(fine, coarse, FINE, COARSE, seeds, samples, threads)          # [n, 2, samples]

The generator makes the COARSE mel (the mid's FINE mel below 8 kHz at 50 frames/s). The spectral
cascader, a text-conditioned diffusion U-Net, makes the whole FINE mel of the mid and of the side
at 100 frames/s from it (noise-augmented conditioning, as in Noise2Music). The crossover keeps the
generator's band: below 8 kHz the mid is the coarse mel itself (interpolated to 100 frames/s),
so the generator decides every note and the cascader adds the band above and the stereo image
(`crossover`). Griffin-Lim then reconstructs mid and
side, and L = M + S, R = M - S.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from n2m.bridge.features import CoarseSpec, MelSpec, apply_side_bands, smooth_side_bands
from n2m.bridge.grid import beat_grid
from n2m.bridge.griffinlim import griffin_lim
from n2m.bridge.manifest import StageSpec

SPECTRAL = "spectral"
# Griffin-Lim passes per channel (mid, side): the quieter side needs fewer; 10 passes of the
# mel-to-magnitude solver keep what 30 do (n2m eval --ceiling) at a third of the cost
GL_ITERS = (32, 8)
NNLS_ITERS = 10
SIDE_SEED = 0x51DE  # the side's initial phase is drawn apart from the mid's


def spectral_cond(coarse: np.ndarray, spec: StageSpec, pool: int) -> np.ndarray:
    """[n, coarse bins, frames * pool] the coarse log-mel repeated to the fine frame rate and
    normalised as the spectral stage was trained."""
    up = np.repeat(np.asarray(coarse, np.float32), pool, axis=-1)
    return ((up - spec.mel_norm["mean"]) / spec.mel_norm["scale"]).astype(np.float32)


def spectral_guidance(spec: StageSpec) -> float:
    """The spectral stage's guidance scale: its manifest's default, 1 (none) where it names none."""
    return float(spec.guidance.default) if spec.guidance is not None else 1.0


def sample_spectral(stage, spec: StageSpec, coarse: np.ndarray, states: np.ndarray, mask: np.ndarray,
                    controls: Any, seeds: list[int], steps: int, pool: int, hooks=None,
                    sampler: str | None = None, seconds: float | None = None,
                    guidance: float | None = None) -> np.ndarray:
    """[n, 2, fine bins, frames * pool] fine log-mel (mid, side) from [n, coarse bins, frames]
    coarse log-mel (the mid's bins only: side bands are the crossover's). Per row the seed draws
    the conditioning's augmentation noise, then the initial noise; the prompt's text states
    condition every row, with classifier-free guidance against "" and no controls (the coarse mel
    kept) when `guidance` (default: the stage's) is not 1. With `seconds` the coarse mel is a
    loop's circle of that length, and so is the output (bridge.periodic). A relative-side stage's side rows are put back on its mid."""
    from n2m.bridge.cascade import NO_HOOKS, _sample, generator_cond
    from n2m.bridge.periodic import Circle

    hooks = hooks or NO_HOOKS
    n, frames = coarse.shape[0], coarse.shape[-1] * pool
    clean = spectral_cond(coarse, spec, pool)
    rngs = [np.random.default_rng(s) for s in seeds]
    noise = np.stack([r.standard_normal(clean.shape[1:], dtype=np.float32) for r in rngs])
    aug = np.full((n,), float(spec.cond_aug), np.float64)
    cond = spec.schedule_obj().add_noise(clean, noise, aug).astype(np.float32)
    grid = beat_grid(frames, frames / seconds if seconds else spec.rate, controls.bpm, controls.meter)
    if seconds:
        stage = Circle.from_seeds(frames, spec.frame_multiple, seeds).wrap(stage, ("grid", "cond"))
    g = float(spectral_guidance(spec) if guidance is None else guidance)
    guided = g != 1.0
    kw = generator_cond(states, mask, controls, grid, n, guided=guided)
    kw["cond"] = np.ascontiguousarray(np.concatenate([cond, cond], 0) if guided else cond)
    rows = 2 * n if guided else n

    def model(x: np.ndarray, t: float) -> np.ndarray:
        hooks.check_cancel(f"between {spec.name} steps")
        v = stage(np.concatenate([x, x], 0) if guided else x, np.full((rows,), t, np.float32), **kw)
        if guided:
            v = (v[n:] + g * (v[:n] - v[n:])).astype(np.float32, copy=False)
        return v

    x = np.stack([r.standard_normal((spec.channels, frames), dtype=np.float32) for r in rngs])
    out = _sample(spec.name, model, x, steps, spec, sampler or spec.default_sampler, rngs, hooks)
    if spec.config.get("side", "absolute") == "relative":  # the side rows hold side - mid
        half = spec.channels // 2
        out[:, half:] += out[:, :half]
    fine = out * spec.mel_norm["scale"] + spec.mel_norm["mean"]
    return fine.reshape(n, 2, spec.channels // 2, frames).astype(np.float32)


HF_MARGIN = 1.0  # nats a bin above the coarse band may exceed the frame's top coarse bins by
TOP_BINS = 8  # the coarse band's top bins that set that reference


def upsample_frames(coarse: np.ndarray, pool: int, frames: int, circular: bool = False) -> np.ndarray:
    """[bins, frames] log-mel at the fine frame rate from [bins, coarse frames]: linear in time
    between coarse frame centres (no steps every `pool` frames for Griffin-Lim to click on);
    `circular`: the last frame leads on to the first (a loop)."""
    c = np.asarray(coarse, np.float32)
    centres = np.arange(c.shape[1]) * pool + (pool - 1) / 2.0
    t = np.arange(frames, dtype=np.float64)
    period = {"period": float(frames)} if circular else {}
    return np.stack([np.interp(t, centres, row, **period) for row in c]).astype(np.float32)


def crossover(fine: np.ndarray, coarse: np.ndarray, spec: CoarseSpec, circular: bool = False) -> np.ndarray:
    """[2, bins, frames] mid + side log-mel from the cascader's output and the generator's coarse
    mel: the mid below the coarse band's top is the generator's own; above it the cascader's,
    at most HF_MARGIN above the frame's top coarse bins; the side never louder than the mid in
    a bin. The generator decides the notes, the cascader adds the air and the image; where the
    generator makes side bands (`spec.side_bands`), their levels (a running mean over half a second)
    set the image's, band by band."""
    out = np.array(fine, dtype=np.float32, copy=True)
    b, frames = spec.n_bins, out.shape[-1]
    low = upsample_frames(coarse[:b], spec.pool, frames, circular)
    out[0, :b] = low
    ref = low[b - TOP_BINS:].max(axis=0) + HF_MARGIN
    np.minimum(out[0, b:], ref[None], out=out[0, b:])
    np.minimum(out[1], out[0], out=out[1])
    if not spec.side_bands:
        return out
    return apply_side_bands(out, smooth_side_bands(coarse[b:], spec, circular), spec)


def decode_fine(fine: np.ndarray, coarse: np.ndarray | None, mel: MelSpec, coarse_spec: CoarseSpec,
                seeds: list[int], samples: int, threads: int, mel_max: float | None = None,
                circular: bool = False) -> np.ndarray:
    """[n, 2, samples] stereo audio from [n, 2, bins, frames] fine log-mel (mid, side): the
    crossover with the generator's coarse mel (when `coarse` is given), clamped to the corpus'
    loudest value, Griffin-Lim per channel, then left = mid + side, right = mid - side."""
    fine = np.array(fine, dtype=np.float32, copy=True)
    n = fine.shape[0]
    if coarse is not None:
        fine = np.stack([crossover(f, c, coarse_spec, circular) for f, c in zip(fine, coarse, strict=True)])
    if mel_max is not None:
        np.clip(fine, float(np.log(mel.log_floor)), float(mel_max), out=fine)
    # the floor is "this quiet or quieter": reconstructed as silence, not as a noise floor (a
    # centred mix's side sits at the floor and would otherwise come back as hiss)
    fine = np.log(np.maximum(np.exp(fine) - mel.log_floor, 1e-12)).astype(np.float32)

    # the side from a phase of its own: started from the mid's, it stays too like the mid and L/R
    # correlate more than the renders do (0.966 against 0.942, median of 15 renders)
    kw = {"length": samples, "circular": circular, "nnls_iters": NNLS_ITERS}

    def one(job: tuple[int, int], workers: int = 1) -> np.ndarray:
        i, ch = job
        seed = seeds[i] if ch == 0 else (seeds[i] + SIDE_SEED) % 2**63
        return griffin_lim(fine[i, ch], mel, n_iter=GL_ITERS[ch], seed=seed, workers=workers, **kw)

    jobs = [(i, ch) for ch in (0, 1) for i in range(n)]
    if threads <= 1:
        done = [one(j) for j in jobs]
    elif n >= threads:  # a clip per thread
        with ThreadPoolExecutor(threads, thread_name_prefix="n2m-gl-fine") as pool:
            done = list(pool.map(one, jobs))
    else:  # fewer clips than threads: the threads share each channel's frames
        done = [one(j, threads) for j in jobs]
    audio = np.stack([np.stack([done[i], done[n + i]]) for i in range(n)])
    mid, side = audio.reshape(n, 2, -1)[:, 0], audio.reshape(n, 2, -1)[:, 1]
    return np.stack([mid + side, mid - side], axis=1).astype(np.float32)
