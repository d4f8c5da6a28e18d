"""The cascade, defined once: prompt -> generator -> cascader(s) -> audio, over stage callables.

    v = stage(x, t, **cond)       # x [B, C, N] float32, t [B] float32 -> v like x

A stage is anything with that call: the runtime's ONNX Runtime runners (bridge.engine) or a thin
torch wrapper (exporter.models.torchstage), as k-diffusion wraps `model(x, sigma, **extra_args)`.
Evaluation, training previews, benchmarks and the runtime all sample through `Cascade.run`, so the
guidance batching, seeds, noise order and decoders cannot drift between them.

One run: the prompt and "" are encoded together; the generator samples N variations with
classifier-free guidance (conditional and unconditional rows in one batch of 2N, the unconditional
row with every control unspecified); the cascader (the diffusion vocoder, Griffin-Lim, or the wave
route's audio cascader) makes audio; an optional superres stage makes 48 kHz audio, keeping its
input's own band below the crossover. Variation i draws all its noise from seed + i.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from n2m.bridge.features import CoarseSpec, MelSpec
from n2m.bridge.grid import beat_grid
from n2m.bridge.griffinlim import griffin_lim
from n2m.bridge.hold import Edit, _Hold  # noqa: F401 - Edit is part of the cascade's interface
from n2m.bridge.manifest import GRIFFIN_LIM, Manifest, StageSpec
from n2m.bridge.periodic import Circle, circle_frames
from n2m.bridge.resample import keep_low_band, upsample
from n2m.bridge.sampling import SAMPLERS
from n2m.bridge.schedule import timesteps
from n2m.bridge.spectral import SPECTRAL, decode_fine, sample_spectral, spectral_guidance

Progress = Callable[[dict], None]
TEXT_WEIGHT = 0.02  # share of the progress bar given to the text encoder
GL_FINE_COST = 160.0  # ms of Griffin-Lim (mid + side, 44.1 kHz) per second of audio, in step_cost's units


class Cancelled(Exception):
    """The request's cancel event was set; raised between sampling steps."""


class Stage(Protocol):
    def __call__(self, x: np.ndarray, t: np.ndarray, **cond: np.ndarray) -> np.ndarray: ...


TextEncoder = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]  # prompts -> (states, mask)


@dataclass
class Plan:
    """What one run does: variations, steps, guidance, sampler, seconds, decoder."""

    prompt: str
    controls: Any  # bridge.controls.Controls
    seed: int
    variations: int
    steps: int
    guidance: float
    sampler: str
    seconds: float
    decoder: str  # the route's cascader stage name, or "griffin-lim"
    edit: Edit | None = None  # a source in the generator's space (normalised, this plan's frames)
    loop: bool = False  # `seconds` as a loop on a circle of grid frames spanning it (bridge.periodic); mel and fine routes, no superres


class _RowRng:
    """Per-row noise for batched samplers: row i draws from its own generator."""

    def __init__(self, rngs: list[np.random.Generator]) -> None:
        self.rngs = rngs

    def standard_normal(self, shape, dtype=np.float32) -> np.ndarray:
        shape = tuple(shape)
        if shape[0] != len(self.rngs):
            raise ValueError(f"batch {shape[0]} != {len(self.rngs)} generators")
        return np.stack([r.standard_normal(shape[1:], dtype=dtype) for r in self.rngs])


def per_frame(manifest: Manifest, stage: StageSpec) -> int:
    """A stage's output samples (or mel frames) per grid frame."""
    return max(1, int(round(stage.rate / manifest.frame_rate)))


def superres_band(cond_rate: float) -> tuple[float, float]:
    """(pass_hz, stop_hz) of the crossover after the superres stage: its input's own audio is kept
    up to 7/8 of the input's Nyquist frequency, the stage's output is taken from the Nyquist
    frequency up, and the two are crossfaded between."""
    nyquist = float(cond_rate) / 2.0
    return 0.875 * nyquist, nyquist


def generator_cond(states: np.ndarray, mask: np.ndarray, controls: Any, grid: np.ndarray, n: int,
                   guided: bool) -> dict[str, np.ndarray]:
    """The generator's conditioning for n variations: conditional rows, then (guided) unconditional
    rows with the states of "" and every control unspecified."""
    idx = controls.indices()
    cond = {
        "text": np.repeat(states[0:1], n, 0), "text_mask": np.repeat(mask[0:1], n, 0),
        "bpm": np.full((n,), float(controls.bpm or 0.0), np.float32),
        "key": np.full((n,), idx["key"], np.int64), "mode": np.full((n,), idx["mode"], np.int64),
        "meter": np.full((n,), idx["meter"], np.int64), "grid": np.repeat(grid[None], n, 0),
    }
    if guided:
        uncond = {
            "text": np.repeat(states[1:2], n, 0), "text_mask": np.repeat(mask[1:2], n, 0),
            "bpm": np.zeros((n,), np.float32), "key": np.zeros((n,), np.int64),
            "mode": np.zeros((n,), np.int64), "meter": np.zeros((n,), np.int64),
            "grid": np.zeros((n,) + grid.shape, np.float32),
        }
        cond = {k: np.concatenate([cond[k], uncond[k]], 0) for k in cond}
    return {k: np.ascontiguousarray(v) for k, v in cond.items()}


@dataclass
class Cascade:
    """A manifest's stages as callables, run one request at a time."""

    manifest: Manifest
    text: TextEncoder
    stages: dict[str, Stage]
    threads: int = 1  # Griffin-Lim decodes up to this many clips at once
    lock: threading.Lock = field(default_factory=threading.Lock)

    def frames_for(self, seconds: float) -> int:
        """Grid frames covering `seconds`, rounded up to the multiple the U-Nets need."""
        m = self.manifest.frame_multiple
        f = int(np.ceil(seconds * self.manifest.frame_rate - 1e-9))
        return max(m, int(np.ceil(f / m)) * m)

    def run(self, plan: Plan, progress: Progress | None = None,
            cancel: threading.Event | None = None) -> tuple[np.ndarray, dict]:
        """[variations, samples] audio at the manifest's rate (not yet trimmed; a loop's circle), and timings."""
        with self.lock:
            return _Run(self, plan, progress, cancel).run()

    def superres(self, audio: np.ndarray, seeds: list[int], keep_low: bool = True) -> np.ndarray:
        """Only the superres stage, on [n, m] audio at its conditioning rate, one seed per row."""
        plan = Plan("", None, 0, len(seeds), 1, 1.0, "ddim", 0.0, self.manifest.cascader_name)
        with self.lock:
            return _Run(self, plan, None, None, seeds=list(seeds)).audio_stage("superres", audio, keep_low)


class _Run:
    """One request through the cascade: progress weighting, cancellation and timings in one place."""

    def __init__(self, cascade: Cascade, plan: Plan, progress: Progress | None,
                 cancel: threading.Event | None, seeds: list[int] | None = None) -> None:
        self.c, self.plan, self.progress, self.cancel = cascade, plan, progress, cancel
        man = cascade.manifest
        self.man, self.n = man, int(plan.variations)
        self.frames = circle_frames(plan.seconds, man.frame_rate) if plan.loop else cascade.frames_for(plan.seconds) if plan.seconds else 0
        self.guided = plan.guidance != 1.0
        self.seeds = seeds if seeds is not None else [int(plan.seed) + i for i in range(self.n)]
        self.timings: dict[str, float] = {}
        cas, sup = man.cascader, man.superres
        self.cas_steps = cas.default_steps if plan.decoder != GRIFFIN_LIM or man.route == "fine" else 1
        self.sup_steps = sup.default_steps if sup is not None else 0
        rows = 2 * self.n if self.guided else self.n
        # progress labels are the stages' names (the decoder's, for the step after the generator);
        # weights: measured per-step costs from the export, scaled by rows and duration
        self.weights = {man.generator_name: plan.steps * man.generator.step_cost * rows,
                        plan.decoder: self.cas_steps * cas.step_cost * self.n,
                        "superres": self.sup_steps * sup.step_cost * self.n if sup is not None else 0.0}
        if man.route == "fine":
            self.weights = {man.generator_name: self.weights[man.generator_name],
                            SPECTRAL: self.cas_steps * cas.step_cost * self.n * (2 if spectral_guidance(cas) != 1.0 else 1),
                            GRIFFIN_LIM: GL_FINE_COST * self.n}
        self.order = list(self.weights)

    def report(self, stage: str, i: int, of: int) -> None:
        if stage == "text":
            frac = TEXT_WEIGHT * i / of
        else:
            total = max(sum(self.weights.values()), 1e-9)
            done = sum(self.weights[s] for s in self.order[:self.order.index(stage)])
            frac = TEXT_WEIGHT + (1 - TEXT_WEIGHT) * (done + self.weights[stage] * i / of) / total
        if self.progress is not None:
            self.progress({"stage": stage, "step": i, "steps": of, "fraction": min(1.0, frac)})

    def check_cancel(self, where: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(f"generation cancelled {where}")

    def run(self) -> tuple[np.ndarray, dict]:
        man = self.man
        states, mask = self.encode()
        out = self.generate(states, mask)
        gen = man.generator
        if man.route == "fine":
            audio = self.fine(out * gen.mel_norm["scale"] + gen.mel_norm["mean"], states, mask)
        elif man.route == "wave":
            low = (out[:, 0] / gen.audio_scale).astype(np.float32)
            audio = self.audio_stage("cascader", low)
        else:
            audio = self.decode(out * gen.mel_norm["scale"] + gen.mel_norm["mean"])
        if man.superres is not None:
            audio = self.audio_stage("superres", audio.astype(np.float32))
        info = {"cascader_steps": self.cas_steps, "frames": self.frames, **self.timings}
        if man.superres is not None:
            info["superres_steps"] = self.sup_steps
        return audio, info

    def encode(self) -> tuple[np.ndarray, np.ndarray]:
        self.check_cancel("before the text encoder")
        self.report("text", 0, 1)
        t0 = time.perf_counter()
        states, mask = self.c.text([self.plan.prompt, ""])
        self.timings["text_s"] = time.perf_counter() - t0
        self.report("text", 1, 1)
        return states.astype(np.float32, copy=False), mask.astype(np.float32)

    def generate(self, states: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The generator's [n, C, N] output: normalised log-mel, or low-rate audio (wave route)."""
        man, plan = self.man, self.plan
        gen = man.generator
        grid = beat_grid(self.frames, self.frames / plan.seconds if plan.loop else man.frame_rate, plan.controls.bpm, plan.controls.meter)
        t0 = time.perf_counter()
        out = sample_generator(self.c.stages[man.generator_name], gen, states, mask, plan.controls, grid,
                               self.seeds, (gen.channels, self.frames * per_frame(man, gen)), plan.steps,
                               plan.guidance, plan.sampler, self, edit=plan.edit, loop=plan.loop)
        self.timings["generator_s"] = time.perf_counter() - t0
        return out

    def decode(self, log_mel: np.ndarray) -> np.ndarray:
        """Log-mel -> audio at the cascader's rate: the diffusion vocoder or Griffin-Lim."""
        man = self.man
        if man.mel_max is not None:  # the corpus' range: nothing louder was ever heard in training
            floor = float(np.log(man.mel.get("log_floor", 1e-5)))
            log_mel = np.clip(log_mel, floor, float(man.mel_max))
        samples = self.frames * per_frame(man, man.cascader)
        t0 = time.perf_counter()
        if self.plan.decoder != GRIFFIN_LIM:
            audio = sample_vocoder(self.c.stages["vocoder"], man.vocoder, log_mel, self.seeds, samples,
                                   self.cas_steps, self, loop=self.plan.loop)
        else:
            self.check_cancel("before Griffin-Lim")
            self.report(GRIFFIN_LIM, 0, 1)
            audio = decode_griffin_lim(log_mel, MelSpec(**man.mel), self.seeds, samples, self.c.threads, self.plan.loop)
            self.report(GRIFFIN_LIM, 1, 1)
        self.timings["cascader_s"] = time.perf_counter() - t0
        return audio

    def fine(self, coarse: np.ndarray, states: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """[n, 2, samples] stereo from the generator's coarse log-mel (and side bands): spectral
        stage, crossover, Griffin-Lim."""
        man, spec = self.man, self.man.stages[SPECTRAL]
        coarse_spec = CoarseSpec.from_dict(man.coarse)
        t0 = time.perf_counter()
        fine = sample_spectral(self.c.stages[SPECTRAL], spec, coarse[:, :coarse_spec.n_bins], states, mask,
                               self.plan.controls, self.seeds,
                               self.cas_steps, coarse_spec.pool, self, seconds=self.plan.seconds if self.plan.loop else None)
        self.timings["cascader_s"] = time.perf_counter() - t0
        self.check_cancel("before Griffin-Lim")
        self.report(GRIFFIN_LIM, 0, 1)
        t0 = time.perf_counter()
        audio = decode_fine(fine, coarse, MelSpec(**man.mel), coarse_spec, self.seeds, self.frames * man.hop,
                            self.c.threads, man.mel_max, circular=self.plan.loop)
        self.timings["griffin_lim_s"] = time.perf_counter() - t0
        self.report(GRIFFIN_LIM, 1, 1)
        return audio

    def audio_stage(self, name: str, low: np.ndarray, keep_low: bool = True) -> np.ndarray:
        t0 = time.perf_counter()
        spec = self.man.stages[name]
        out = sample_audio_stage(self.c.stages[name], spec, low, self.seeds, int(spec.default_steps), self,
                                 label=name, keep_low=keep_low)
        self.timings[f"{name}_s"] = time.perf_counter() - t0
        return out


class Hooks(Protocol):
    """Progress and cancellation between steps (a run object; `NO_HOOKS` when nothing listens)."""

    def report(self, stage: str, i: int, of: int) -> None: ...
    def check_cancel(self, where: str) -> None: ...


class _NoHooks:
    def report(self, stage: str, i: int, of: int) -> None:
        pass

    def check_cancel(self, where: str) -> None:
        pass


NO_HOOKS = _NoHooks()


def _sample(label: str, model, x: np.ndarray, steps: int, spec: StageSpec, sampler: str,
            rngs: list[np.random.Generator], hooks: Hooks, start: float = 1.0) -> np.ndarray:
    """One stage's sampling loop from diffusion time `start` (1 = pure noise) to 0, reporting and
    checking for cancellation between steps."""
    kwargs = {"rng": _RowRng(rngs)} if sampler == "ancestral" else {}
    hooks.check_cancel(f"before the {label}")
    hooks.report(label, 0, steps)
    return SAMPLERS[sampler](
        model, x, timesteps(steps) * float(start), spec.schedule_obj(),
        callback=lambda d: (hooks.report(label, d["i"] + 1, d["n"]), hooks.check_cancel(f"between {label} steps")),
        **kwargs)


def sample_generator(stage: Stage, spec: StageSpec, states: np.ndarray, mask: np.ndarray, controls: Any,
                     grid: np.ndarray, seeds: list[int], shape: tuple[int, int], steps: int, guidance: float,
                     sampler: str, hooks: Hooks = NO_HOOKS, edit: Edit | None = None, loop: bool = False,
                     interval: tuple[float, float] | None = None) -> np.ndarray:
    """[n, C, N] generator output (normalised) for one prompt, a variation per seed, with
    classifier-free guidance (states/mask rows: the prompt, then "") at the steps whose diffusion
    time lies in `interval` (default: the stage's; elsewhere the conditional pass alone); from a
    source with `edit`, or with `loop` (no edit) on a circle of N frames, through windows of it
    (bridge.periodic)."""
    n, guided = len(seeds), guidance != 1.0
    if interval is None:
        interval = tuple(spec.guidance.interval) if spec.guidance is not None else (0.0, 1.0)
    lo, hi = (float(v) for v in interval)
    stage = Circle.from_seeds(grid.shape[-1], spec.frame_multiple, seeds).wrap(stage, ("grid",)) if loop else stage
    cond = generator_cond(states, mask, controls, grid, n, guided)
    cond_only = {k: v[:n] for k, v in cond.items()}
    g = row_guidance(spec, guidance, shape[0])
    keep = 1.0 - (spec.guidance.envelope if spec.guidance is not None else 1.0)
    rngs = [np.random.default_rng(s) for s in seeds]
    z = np.stack([r.standard_normal(shape, dtype=np.float32) for r in rngs])
    hold = _Hold(edit, spec, z, rngs) if edit is not None else None

    def model(z: np.ndarray, t: float) -> np.ndarray:
        hooks.check_cancel(f"between {spec.name} steps")
        z_in = hold.inputs(z, t) if hold is not None else z
        if guided and lo <= t <= hi:
            v = stage(np.concatenate([z_in, z_in], 0), np.full((2 * n,), t, np.float32), **cond)
            vc, vu = v[:n], v[n:]
            if keep:  # the unconditional pass moved by the difference's mean over time: that share unguided
                vu = vu + keep * (vc - vu).mean(axis=-1, keepdims=True)
            v = (vu + g * (vc - vu)).astype(np.float32, copy=False)
        else:
            v = stage(z_in, np.full((n,), t, np.float32), **cond_only)
        return hold.held(z, v, t) if hold is not None else v

    start = 1.0
    if edit is not None:
        start = float(edit.strength)
        z = spec.schedule_obj().add_noise(hold.source, z, np.full((n,), start)).astype(np.float32)
    return _sample(spec.name, model, z, steps, spec, sampler, rngs, hooks, start=start)


def row_guidance(spec: StageSpec, guidance: float, rows: int) -> float | np.ndarray:
    """The guidance scale, or [rows, 1] scales when the manifest sets the side-band rows' own."""
    side = spec.guidance.side if spec.guidance is not None else None
    if side is None:
        return float(guidance)
    g = np.full((rows, 1), float(guidance), np.float32)
    g[rows - int(spec.config["side_bands"]):] = float(side)
    return g


def sample_vocoder(stage: Stage, spec: StageSpec, log_mel: np.ndarray, seeds: list[int], samples: int,
                   steps: int, hooks: Hooks = NO_HOOKS, sampler: str | None = None, loop: bool = False) -> np.ndarray:
    """The diffusion vocoder: [n, bins, frames] log-mel -> [n, samples] audio (`loop`: on a circle)."""
    n = len(seeds)
    stage = Circle.from_seeds(log_mel.shape[-1], spec.frame_multiple, seeds).wrap(stage, ("mel",)) if loop else stage
    mel = np.ascontiguousarray(((log_mel - spec.mel_norm["mean"]) / spec.mel_norm["scale"]).astype(np.float32))

    def model(x: np.ndarray, t: float) -> np.ndarray:
        hooks.check_cancel("between vocoder steps")
        return stage(x, np.full((n,), t, np.float32), mel=mel)

    rngs = [np.random.default_rng(s) for s in seeds]
    x = np.stack([r.standard_normal((1, samples), dtype=np.float32) for r in rngs])
    audio = _sample(spec.name, model, x, steps, spec, sampler or spec.default_sampler, rngs, hooks)
    return audio[:, 0] / spec.audio_scale


def sample_audio_stage(stage: Stage, spec: StageSpec, low: np.ndarray, seeds: list[int], steps: int,
                       hooks: Hooks = NO_HOOKS, label: str = "cascader", keep_low: bool = True,
                       sampler: str | None = None) -> np.ndarray:
    """An audio-conditioned cascader (the wave route's, or superres): [n, m] audio at its
    conditioning rate -> [n, m * factor]; per row the seed draws the conditioning's augmentation
    noise, then the initial noise. Superres keeps its input's own band below the crossover."""
    up, cond, aug = audio_condition(spec, low, seeds)
    n = len(seeds)

    def model(x: np.ndarray, t: float) -> np.ndarray:
        hooks.check_cancel(f"between {label} steps")
        return stage(x, np.full((n,), t, np.float32), cond=cond, aug=aug)

    rngs = [np.random.default_rng(s) for s in seeds]
    for r in rngs:  # the augmentation noise came first from each row's seed
        r.standard_normal((1, up.shape[-1]), dtype=np.float32)
    x = np.stack([r.standard_normal((1, up.shape[-1]), dtype=np.float32) for r in rngs])
    audio = _sample(label, model, x, steps, spec, sampler or spec.default_sampler, rngs, hooks)
    out = (audio[:, 0] / spec.audio_scale).astype(np.float32)
    if spec.name == "superres" and keep_low:
        out = keep_low_band(up[:, 0] / np.float32(spec.audio_scale), out, spec.rate, *superres_band(spec.cond_rate))
    return out


def audio_condition(spec: StageSpec, low: np.ndarray, seeds: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(upsampled audio * scale [n, 1, m], its noise-augmented form, aug [n]) for an audio cascader."""
    factor = int(round(spec.rate / spec.cond_rate))
    n = low.shape[0]
    up = upsample(low, factor)[:, None, :] * np.float32(spec.audio_scale)
    rngs = [np.random.default_rng(s) for s in seeds]
    noise = np.stack([r.standard_normal((1, up.shape[-1]), dtype=np.float32) for r in rngs])
    aug = float(spec.cond_aug)
    cond = spec.schedule_obj().add_noise(up, noise, np.full((n,), aug, np.float64)).astype(np.float32)
    return up, np.ascontiguousarray(cond), np.full((n,), aug, np.float32)


def decode_griffin_lim(log_mel: np.ndarray, spec: MelSpec, seeds: list[int], length: int,
                       threads: int, circular: bool = False) -> np.ndarray:
    """Griffin-Lim for each variation, one thread per clip, up to `threads` clips at once: numpy's
    FFTs gain nothing from splitting one clip, and separate clips never wait for each other."""
    n = log_mel.shape[0]

    def one(i: int) -> np.ndarray:
        return griffin_lim(log_mel[i], spec, seed=seeds[i], length=length, circular=circular)

    if n == 1 or threads <= 1:
        return np.stack([one(i) for i in range(n)])
    with ThreadPoolExecutor(min(n, threads), thread_name_prefix="n2m-gl-clip") as pool:
        return np.stack(list(pool.map(one, range(n))))
