"""The runtime engine: an exported cascade (bridge.manifest) run with ONNX Runtime and the numpy samplers.

    engine = Engine.load("bridge/models/default", provider="auto", threads=2)
    clips = engine.generate(Request("dusty boom-bap, 88 bpm", resolve(prompt), seed=7),
                            progress=print, cancel=threading.Event())

One request: the prompt and the empty prompt "" are tokenised (`tokenizers`) and encoded in one
text-encoder run; the generator samples N variations of normalised log-mel with classifier-free
guidance, the conditional and unconditional rows of all variations in one batch of 2N; the vocoder
cascader turns the N log-mels into 16 kHz audio in one batch; the audio is trimmed to the requested
duration. On the manifest's "wave" route the generator ("wavegen") samples 3.2 kHz audio the same
way, and the "cascader" turns it, upsampled to 16 kHz (bridge.resample) and noise-augmented to the
manifest's `cond_aug`, into 16 kHz audio. When the manifest has a "superres" stage, it turns the
16 kHz audio, upsampled to 48 kHz, into 48 kHz audio last (either route), keeping the 16 kHz
audio's own band below the crossover (`superres_band`); clips then carry 48 kHz. The network-free
Griffin-Lim decoder runs one thread per clip, several variations at once. Variation i
is seeded with `seed + i` (noise drawn per row), so any clip is reproduced on
its own by its `GeneratedClip.seed`. Results are deterministic for a seed on a given provider and
thread count.

Providers are explicit: "cpu" (fp32 graphs, a set thread count), "cuda" (fp16 graphs, IOBinding:
the conditioning inputs and the output buffer stay on the GPU for every step of a stage; only the
noisy signal and v cross the bus each step, since the sampler is numpy), "auto" (CUDA when this
onnxruntime build has it, else CPU). Asking for CUDA without it falls back to CPU with one warning.
"""

from __future__ import annotations

import math
import os
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from n2m.bridge.controls import Controls
from n2m.bridge.features import MelSpec
from n2m.bridge.grid import beat_grid
from n2m.bridge.griffinlim import griffin_lim
from n2m.bridge.manifest import DECODERS, Manifest, ModelError, StageSpec
from n2m.bridge.request import MAX_STEPS, MAX_VARIATIONS, Request, RequestError
from n2m.bridge.resample import keep_low_band, upsample
from n2m.bridge.sampling import SAMPLERS
from n2m.bridge.schedule import timesteps
from n2m.bridge.tokenizer import PromptTokenizer

__all__ = [
    "Engine", "Request", "GeneratedClip", "ModelError", "Cancelled", "RequestError",
    "MAX_STEPS", "MAX_VARIATIONS",
]

_TEXT_WEIGHT = 0.02  # share of the progress bar given to the text encoder
Progress = Callable[[dict], None]


class Cancelled(Exception):
    """The request's cancel event was set; raised between sampling steps."""


@dataclass
class GeneratedClip:
    audio: np.ndarray  # float32 mono [samples]
    sample_rate: int
    prompt: str
    controls: Controls
    seed: int  # the seed that reproduces this clip alone: request seed + index
    index: int  # variation index within the request
    model_id: str
    steps: int
    guidance: float
    info: dict = field(default_factory=dict)  # provider, sampler, frames, timings


PEAK_CEILING = 0.98  # linear peak a decoded clip is limited to (by a plain gain)


class _RowRng:
    """Per-row noise for batched samplers: row i draws from its own generator."""

    def __init__(self, rngs: list[np.random.Generator]) -> None:
        self.rngs = rngs

    def standard_normal(self, shape, dtype=np.float32) -> np.ndarray:
        shape = tuple(shape)
        if shape[0] != len(self.rngs):
            raise ValueError(f"batch {shape[0]} != {len(self.rngs)} generators")
        return np.stack([r.standard_normal(shape[1:], dtype=dtype) for r in self.rngs])


class _Runner:
    """One ONNX stage: constant conditioning bound once per request, then (x, t) -> v per step."""

    def __init__(self, session: ort.InferenceSession, output: str, device: str) -> None:
        self.session = session
        self.output = output
        self.device = device
        self._const: dict[str, np.ndarray] = {}
        self._io = None
        self._x = self._t = self._v = None

    def begin(self, const: dict[str, np.ndarray], x_shape: tuple[int, ...], v_shape: tuple[int, ...]) -> None:
        self._const = const
        if self.device != "cuda":
            return
        # CUDA: conditioning and output live on the device for the whole stage.
        io = self.session.io_binding()
        for name, arr in const.items():
            io.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr), "cuda", 0))
        self._x = ort.OrtValue.ortvalue_from_shape_and_type(x_shape, np.float32, "cuda", 0)
        self._t = ort.OrtValue.ortvalue_from_shape_and_type((x_shape[0],), np.float32, "cuda", 0)
        self._v = ort.OrtValue.ortvalue_from_shape_and_type(v_shape, np.float32, "cuda", 0)
        io.bind_ortvalue_input("x", self._x)
        io.bind_ortvalue_input("t", self._t)
        io.bind_ortvalue_output(self.output, self._v)
        self._io = io

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        if self._io is None:
            return self.session.run([self.output], {**self._const, "x": x, "t": t})[0]
        self._x.update_inplace(np.ascontiguousarray(x, dtype=np.float32))
        self._t.update_inplace(np.ascontiguousarray(t, dtype=np.float32))
        self.session.run_with_iobinding(self._io)
        return self._v.numpy()

    def end(self) -> None:
        self._const, self._io, self._x, self._t, self._v = {}, None, None, None, None


def _cuda_available() -> bool:
    return "CUDAExecutionProvider" in ort.get_available_providers()


class Engine:
    """A loaded cascade. `generate` is serialised by a lock (one request at a time per engine)."""

    def __init__(self, model_dir: Path, manifest: Manifest, provider: str, threads: int | None,
                 tokenizer: PromptTokenizer, text: ort.InferenceSession,
                 stages: dict[str, ort.InferenceSession], variants: dict[str, str]) -> None:
        self.model_dir = model_dir
        self.manifest = manifest
        self.model_id = manifest.model_id
        self.sample_rate = int(manifest.sample_rate)
        self.provider = provider
        self.threads = threads or (os.cpu_count() or 1)  # None = all cores, as the ORT sessions use
        self.variants = variants
        self._tokenizer = tokenizer
        self._text = text
        self._runners = {k: _Runner(s, manifest.stages[k].output, provider) for k, s in stages.items()}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, model_dir: str | Path, provider: str = "auto", threads: int | None = None,
             precision: str | None = None) -> Engine:
        """Load and verify a model folder. provider: "auto" | "cpu" | "cuda".

        precision: None = fp16 on CUDA, fp32 on CPU; "int8" uses the int8 graphs on CPU where the
        export shipped them (they passed parity at export).
        """
        if provider not in {"auto", "cpu", "cuda"}:
            raise ValueError(f"provider must be 'auto', 'cpu' or 'cuda', got {provider!r}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if precision not in {None, "fp32", "fp16", "int8"}:
            raise ValueError(f"precision must be fp32, fp16 or int8, got {precision!r}")
        model_dir = Path(model_dir)
        manifest = Manifest.load(model_dir)
        device = "cpu"
        if provider in {"auto", "cuda"}:
            if _cuda_available():
                device = "cuda"
            elif provider == "cuda":
                warnings.warn("CUDA was asked for but this onnxruntime has no CUDA provider "
                              "(install onnxruntime-gpu and a CUDA driver): running on the CPU",
                              RuntimeWarning, stacklevel=2)
        try:
            return cls._build(model_dir, manifest, device, threads, precision)
        except _CudaUnusable as exc:
            warnings.warn(f"CUDA provider could not be used ({exc}): running on the CPU",
                          RuntimeWarning, stacklevel=2)
            return cls._build(model_dir, manifest, "cpu", threads, precision)

    @classmethod
    def _build(cls, model_dir: Path, manifest: Manifest, device: str, threads: int | None,
               precision: str | None) -> Engine:
        variants = {}
        for name, spec in manifest.stages.items():
            want = precision or ("fp16" if device == "cuda" else "fp32")
            variants[name] = want if want in spec.files else "fp32"
        te = manifest.text_encoder
        needed = [te.tokenizer, te.files["fp32"]]
        needed += [manifest.stages[n].files[v] for n, v in variants.items()]
        manifest.verify(model_dir, needed)
        tokenizer = PromptTokenizer.from_file(model_dir / te.tokenizer, te.max_tokens)
        text = _session(model_dir / te.files["fp32"], device, threads)
        stages = {n: _session(model_dir / manifest.stages[n].files[v], device, threads)
                  for n, v in variants.items()}
        return cls(model_dir, manifest, device, threads, tokenizer, text, stages, variants)

    # ------------------------------------------------------------------ requests

    def decoder_for(self, req: Request) -> str:
        decoder = req.decoder or self.manifest.default_decoder
        if decoder not in DECODERS:
            raise RequestError(f"unknown decoder {decoder!r}: one of {', '.join(DECODERS)}")
        if self.manifest.route == "wave" and decoder != "cascader":
            raise RequestError(f"decoder {decoder!r} decodes log-mels; this model's wave route generates "
                               "audio, and only its cascader applies")
        return decoder

    def check(self, req: Request) -> tuple[int, float, str, float]:
        """(steps, guidance, sampler, seconds) of a request, or RequestError with the reason: the
        request's own limits (bridge.request), then this model's guidance range, samplers,
        decoders and duration range."""
        req = req.validated()
        gen = self.manifest.generator
        steps = gen.default_steps if req.steps is None else req.steps
        g = gen.guidance
        guidance = (g.default if g else 1.0) if req.guidance is None else float(req.guidance)
        lo, hi = (g.min, g.max) if g else (1.0, 1.0)
        if not lo <= guidance <= hi:
            raise RequestError(f"guidance {guidance:g} is outside this model's range {lo:g}-{hi:g}")
        sampler = req.sampler or gen.default_sampler
        if sampler not in SAMPLERS:
            raise RequestError(f"unknown sampler {sampler!r}: one of {', '.join(SAMPLERS)}")
        self.decoder_for(req)
        seconds = req.controls.duration(self.manifest.default_seconds)
        lo_s, hi_s = self.manifest.controls.seconds_range
        if not math.isfinite(seconds) or not lo_s <= seconds <= hi_s:
            raise RequestError(f"duration {seconds:.2f} s is outside {lo_s:g}-{hi_s:g} s")
        return int(steps), float(guidance), sampler, float(seconds)

    def frames_for(self, seconds: float) -> int:
        """Mel frames covering `seconds`, rounded up to the multiple the U-Nets need."""
        m = self.manifest.frame_multiple
        f = math.ceil(seconds * self.manifest.frame_rate - 1e-9)
        return max(m, math.ceil(f / m) * m)

    def generate(self, req: Request, progress: Progress | None = None,
                 cancel: threading.Event | None = None) -> list[GeneratedClip]:
        req = req.validated()
        steps, guidance, sampler, seconds = self.check(req)
        with self._lock:
            try:
                return self._generate(req, steps, guidance, sampler, seconds, progress, cancel)
            finally:
                for r in self._runners.values():
                    r.end()

    def _generate(self, req: Request, steps: int, guidance: float, sampler: str,
                  seconds: float, progress: Progress | None,
                  cancel: threading.Event | None) -> list[GeneratedClip]:
        man = self.manifest
        gen, cas, sup = man.generator, man.cascader, man.superres
        wave = man.route == "wave"
        n = int(req.variations)
        frames = self.frames_for(seconds)
        guided = guidance != 1.0
        rows = 2 * n if guided else n
        decoder = self.decoder_for(req)
        cas_steps = cas.default_steps if decoder == "cascader" else 1
        sup_steps = sup.default_steps if sup is not None else 0
        # progress weights: measured per-step costs from the export, scaled by rows and duration
        weights = {"generator": steps * gen.step_cost * rows, "cascader": cas_steps * cas.step_cost * n,
                   "superres": sup_steps * sup.step_cost * n if sup is not None else 0.0}
        order = ["generator", "cascader", "superres"]
        total = max(sum(weights.values()), 1e-9)
        timings: dict[str, float] = {}

        def report(stage: str, i: int, of: int) -> None:
            if stage == "text":
                frac = _TEXT_WEIGHT * i / of
            else:
                done = sum(weights[s] for s in order[:order.index(stage)])
                frac = _TEXT_WEIGHT + (1 - _TEXT_WEIGHT) * (done + weights[stage] * i / of) / total
            if progress is not None:
                progress({"stage": stage, "step": i, "steps": of, "fraction": min(1.0, frac)})

        def check_cancel(where: str) -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"generation cancelled {where}")

        # --- text
        check_cancel("before the text encoder")
        report("text", 0, 1)
        t0 = time.perf_counter()
        ids, mask = self._tokenizer([req.prompt, ""])
        states = self._text.run([man.text_encoder.output], {"input_ids": ids, "attention_mask": mask})[0]
        states = states.astype(np.float32, copy=False)
        text_mask = mask.astype(np.float32)
        timings["text_s"] = time.perf_counter() - t0
        report("text", 1, 1)

        # --- generator (log-mel, or low-rate audio on the wave route)
        c = req.controls
        idx = c.indices()
        grid = beat_grid(frames, man.frame_rate, c.bpm, c.meter)
        cond = {
            "text": np.repeat(states[0:1], n, 0), "text_mask": np.repeat(text_mask[0:1], n, 0),
            "bpm": np.full((n,), float(c.bpm or 0.0), np.float32),
            "key": np.full((n,), idx["key"], np.int64), "mode": np.full((n,), idx["mode"], np.int64),
            "meter": np.full((n,), idx["meter"], np.int64), "grid": np.repeat(grid[None], n, 0),
        }
        if guided:
            uncond = {
                "text": np.repeat(states[1:2], n, 0), "text_mask": np.repeat(text_mask[1:2], n, 0),
                "bpm": np.zeros((n,), np.float32), "key": np.zeros((n,), np.int64),
                "mode": np.zeros((n,), np.int64), "meter": np.zeros((n,), np.int64),
                "grid": np.zeros((n,) + grid.shape, np.float32),
            }
            cond = {k: np.concatenate([cond[k], uncond[k]], 0) for k in cond}
        cond = {k: np.ascontiguousarray(v) for k, v in cond.items()}
        gen_shape = (n, gen.channels, frames * self._per_frame(gen))
        runner = self._runners[man.generator_name]
        runner.begin(cond, (rows,) + gen_shape[1:], (rows,) + gen_shape[1:])

        def generator(z: np.ndarray, t: float) -> np.ndarray:
            check_cancel("between generator steps")
            x = np.concatenate([z, z], 0) if guided else z
            v = runner(x, np.full((rows,), t, np.float32))
            if not guided:
                return v
            vc, vu = v[:n], v[n:]
            return (vu + guidance * (vc - vu)).astype(np.float32, copy=False)

        seeds = [int(req.seed) + i for i in range(n)]
        gen_rngs = [np.random.default_rng(s) for s in seeds]
        z = np.stack([r.standard_normal(gen_shape[1:], dtype=np.float32) for r in gen_rngs])
        kwargs = {"rng": _RowRng(gen_rngs)} if sampler == "ancestral" else {}
        check_cancel("before the generator")
        report("generator", 0, steps)
        t0 = time.perf_counter()
        out = SAMPLERS[sampler](
            generator, z, timesteps(steps), gen.schedule_obj(),
            callback=lambda d: (report("generator", d["i"] + 1, d["n"]), check_cancel("between generator steps")),
            **kwargs,
        )
        timings["generator_s"] = time.perf_counter() - t0
        runner.end()

        # --- cascader to 16 kHz: the vocoder (or Griffin-Lim) from log-mel, or the wave cascader
        samples16 = frames * self._per_frame(cas)
        if wave:
            low = (out[:, 0] / gen.audio_scale).astype(np.float32)
            audio = self._audio_cascade("cascader", "cascader", low, seeds, report, check_cancel, timings)
        else:
            log_mel = out * gen.mel_norm["scale"] + gen.mel_norm["mean"]
            if man.mel_max is not None:  # the corpus' range: nothing louder was ever heard in training
                floor = float(np.log(man.mel.get("log_floor", 1e-5)))
                log_mel = np.clip(log_mel, floor, float(man.mel_max))
            if decoder == "griffin-lim":
                check_cancel("before the decoder")
                report("cascader", 0, 1)
                t0 = time.perf_counter()
                audio = self._griffin_lim(log_mel, MelSpec(**man.mel), seeds, samples16)
                report("cascader", 1, 1)
                timings["cascader_s"] = time.perf_counter() - t0
            else:
                audio = self._cascade(log_mel, n, samples16, seeds, cas_steps, report, check_cancel, timings)

        # --- super-resolution to 48 kHz
        if sup is not None:
            audio = self._audio_cascade("superres", "superres", audio.astype(np.float32), seeds, report,
                                        check_cancel, timings)

        samples = frames * man.hop
        keep = min(samples, audio.shape[1], int(round(seconds * self.sample_rate)))
        audio = audio[:, :keep].astype(np.float32, copy=False)
        # headroom: a decoded clip whose peak passes full scale is turned down to PEAK_CEILING (the
        # clip pipeline sets loudness later; this keeps --raw output and analysis unclipped)
        peaks = np.abs(np.nan_to_num(audio)).max(axis=1) if audio.size else np.zeros(n)
        gains = np.where(peaks > PEAK_CEILING, PEAK_CEILING / np.maximum(peaks, 1e-12), 1.0)
        audio = (audio * gains[:, None]).astype(np.float32)
        gain_db = [round(float(20 * np.log10(g)), 2) for g in gains]
        info = {"provider": self.provider, "variants": dict(self.variants), "sampler": sampler,
                "cascader_steps": cas_steps, "decoder": decoder, "frames": frames, "seconds": seconds,
                "route": man.route, **({"superres_steps": sup_steps} if sup is not None else {}), **timings}
        return [
            GeneratedClip(audio=np.ascontiguousarray(audio[i]), sample_rate=self.sample_rate,
                          prompt=req.prompt, controls=req.controls, seed=seeds[i], index=i,
                          model_id=self.model_id, steps=steps, guidance=guidance,
                          info={**info, "headroom_gain_db": gain_db[i]})
            for i in range(n)
        ]

    def superres(self, audio: np.ndarray, seeds: list[int], keep_low: bool = True) -> np.ndarray:
        """Run only the super-resolution stage: [n, m] audio at its conditioning rate (16 kHz) ->
        [n, m * 3] 48 kHz audio, with the manifest's steps, sampler and conditioning noise (what
        `generate` does last). m must be a whole number of grid frames. For measuring the stage on
        real 16 kHz audio (`n2m eval --superres`). ``keep_low=False`` gives the stage's raw output,
        without the input's own band put back below the crossover (`superres_band`)."""
        stage = self.manifest.superres
        if stage is None:
            raise RequestError(f"model {self.model_id} has no superres stage")
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 2 or len(seeds) != audio.shape[0]:
            raise RequestError(f"superres takes [n, samples] audio and n seeds, got {audio.shape} and {len(seeds)}")
        hop = int(round(stage.cond_rate / self.manifest.frame_rate))
        if audio.shape[1] == 0 or audio.shape[1] % hop:
            raise RequestError(f"{audio.shape[1]} samples is not a whole number of {hop}-sample grid frames")
        with self._lock:
            return self._audio_cascade("superres", "superres", audio, list(seeds), lambda *a: None,
                                       lambda where: None, {}, keep_low=keep_low)

    def _per_frame(self, stage: StageSpec) -> int:
        """A stage's output samples (or mel frames) per grid frame."""
        return max(1, int(round(stage.rate / self.manifest.frame_rate)))

    def _griffin_lim(self, log_mel: np.ndarray, spec: MelSpec, seeds: list[int], length: int) -> np.ndarray:
        """Griffin-Lim for each variation, one thread per clip, up to `threads` clips at once:
        numpy's FFTs gain nothing from splitting one clip, and separate clips never wait for each
        other. The audio does not depend on the thread count."""
        n = log_mel.shape[0]
        if n == 1 or self.threads == 1:
            return np.stack([griffin_lim(log_mel[i], spec, seed=seeds[i], length=length, threads=1)
                             for i in range(n)])
        with ThreadPoolExecutor(min(n, self.threads), thread_name_prefix="n2m-gl-clip") as pool:
            return np.stack(list(pool.map(
                lambda i: griffin_lim(log_mel[i], spec, seed=seeds[i], length=length, threads=1), range(n))))

    def _cascade(self, log_mel: np.ndarray, n: int, samples: int, seeds: list[int], voc_steps: int,
                 report, check_cancel, timings: dict) -> np.ndarray:
        """The diffusion vocoder: [n, 80, frames] log-mel -> [n, samples] audio."""
        voc = self.manifest.vocoder
        mel_v = ((log_mel - voc.mel_norm["mean"]) / voc.mel_norm["scale"]).astype(np.float32)
        vrunner = self._runners["vocoder"]
        vrunner.begin({"mel": np.ascontiguousarray(mel_v)}, (n, 1, samples), (n, 1, samples))

        def vocoder(x: np.ndarray, t: float) -> np.ndarray:
            check_cancel("between cascader steps")
            return vrunner(x, np.full((n,), t, np.float32))

        voc_rngs = [np.random.default_rng(s) for s in seeds]
        x = np.stack([r.standard_normal((1, samples), dtype=np.float32) for r in voc_rngs])
        vkwargs = {"rng": _RowRng(voc_rngs)} if voc.default_sampler == "ancestral" else {}
        check_cancel("before the cascader")
        report("cascader", 0, voc_steps)
        t0 = time.perf_counter()
        audio = SAMPLERS[voc.default_sampler](
            vocoder, x, timesteps(voc_steps), voc.schedule_obj(),
            callback=lambda d: (report("cascader", d["i"] + 1, d["n"]), check_cancel("between cascader steps")),
            **vkwargs,
        )
        timings["cascader_s"] = time.perf_counter() - t0
        vrunner.end()
        return audio[:, 0] / voc.audio_scale

    def _audio_cascade(self, name: str, label: str, low: np.ndarray, seeds: list[int], report, check_cancel,
                       timings: dict, keep_low: bool = True) -> np.ndarray:
        """An audio-conditioned cascader (the wave route's cascader, or superres): [n, m] audio at
        the stage's conditioning rate -> [n, m * factor] audio at its rate. Per row, the seed's
        generator draws the conditioning's augmentation noise, then the initial noise (as
        exporter.models.pipeline.AudioCascaderRunner does). The superres stage's output keeps its
        input's own band below the crossover (`superres_band`) unless ``keep_low`` is False."""
        stage = self.manifest.stages[name]
        factor = int(round(stage.rate / stage.cond_rate))
        n = low.shape[0]
        up = upsample(low, factor)[:, None, :] * np.float32(stage.audio_scale)
        samples = up.shape[-1]
        rngs = [np.random.default_rng(s) for s in seeds]
        aug = float(stage.cond_aug)
        sched = stage.schedule_obj()
        noise = np.stack([r.standard_normal((1, samples), dtype=np.float32) for r in rngs])
        cond = sched.add_noise(up, noise, np.full((n,), aug, np.float64)).astype(np.float32)
        crunner = self._runners[name]
        crunner.begin({"cond": np.ascontiguousarray(cond), "aug": np.full((n,), aug, np.float32)},
                      (n, 1, samples), (n, 1, samples))
        steps = int(stage.default_steps)

        def model(x: np.ndarray, t: float) -> np.ndarray:
            check_cancel(f"between {label} steps")
            return crunner(x, np.full((n,), t, np.float32))

        x = np.stack([r.standard_normal((1, samples), dtype=np.float32) for r in rngs])
        kwargs = {"rng": _RowRng(rngs)} if stage.default_sampler == "ancestral" else {}
        check_cancel(f"before the {label}")
        report(label, 0, steps)
        t0 = time.perf_counter()
        audio = SAMPLERS[stage.default_sampler](
            model, x, timesteps(steps), sched,
            callback=lambda d: (report(label, d["i"] + 1, d["n"]), check_cancel(f"between {label} steps")),
            **kwargs,
        )
        crunner.end()
        out = (audio[:, 0] / stage.audio_scale).astype(np.float32)
        if name == "superres" and keep_low:
            out = keep_low_band(up[:, 0] / np.float32(stage.audio_scale), out, stage.rate, *superres_band(stage.cond_rate))
        timings[f"{label}_s"] = time.perf_counter() - t0
        return out


def superres_band(cond_rate: float) -> tuple[float, float]:
    """(pass_hz, stop_hz) of the crossover after the superres stage: its input's own audio is kept
    up to 7/8 of the input's Nyquist frequency (7 kHz for 16 kHz input, where the resamplers'
    transition band begins), the stage's output is taken from the Nyquist frequency up, and the two
    are crossfaded between."""
    nyquist = float(cond_rate) / 2.0
    return 0.875 * nyquist, nyquist


class _CudaUnusable(RuntimeError):
    pass


def _session(path: Path, device: str, threads: int | None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or (os.cpu_count() or 1)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # in memory only
    so.log_severity_level = 3
    providers: list = ["CPUExecutionProvider"]
    if device == "cuda":
        providers = [("CUDAExecutionProvider", {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE",
                                                "do_copy_in_default_stream": True}),
                     "CPUExecutionProvider"]
    try:
        sess = ort.InferenceSession(str(path), so, providers=providers)
    except Exception as exc:  # noqa: BLE001 - ORT raises several types for a bad graph
        if device == "cuda" and "CUDA" in str(exc):
            raise _CudaUnusable(str(exc).splitlines()[0]) from exc
        raise ModelError(
            f"{path} could not be loaded by ONNX Runtime ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Fix: re-export the cascade with "
            f"`n2m export --out {path.parent}` or copy the model folder again"
        ) from exc
    if device == "cuda" and sess.get_providers()[0] != "CUDAExecutionProvider":
        raise _CudaUnusable("the session fell back to " + sess.get_providers()[0])
    return sess
