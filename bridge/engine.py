"""The runtime engine: an exported cascade (bridge.manifest) run with ONNX Runtime.

    engine = Engine.load("bridge/models/default", provider="auto", threads=2)
    clips = engine.generate(Request("dusty boom-bap, 88 bpm", resolve(prompt), seed=7),
                            progress=print, cancel=threading.Event())

The engine loads and verifies the model folder, builds one ONNX Runtime session per stage, checks
a request against the model (guidance range, samplers, decoders, duration) and runs it through
the one cascade (bridge.cascade), then trims and levels the clips. Results are deterministic for a
seed on a given provider.

Providers are explicit: "cpu" (fp32 graphs, a set thread count), "cuda" (fp16 graphs, IOBinding:
the conditioning inputs and the output buffer stay on the GPU for every step of a stage; only the
noisy signal and v cross the bus each step, since the sampler is numpy), "auto" (CUDA when this
onnxruntime build has it, else CPU). Asking for CUDA without it falls back to CPU with one warning.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from n2m.bridge.cascade import Cancelled, Cascade, Edit, Plan, Progress
from n2m.bridge.controls import Controls
from n2m.bridge.features import MelSpec
from n2m.bridge.manifest import GRIFFIN_LIM, Manifest, ModelError
from n2m.bridge.periodic import resample_periodic, whole_bars_seconds
from n2m.bridge.request import MAX_STEPS, MAX_VARIATIONS, Request, RequestError
from n2m.bridge.sampling import SAMPLERS
from n2m.bridge.tokenizer import PromptTokenizer

__all__ = [
    "Engine", "Request", "GeneratedClip", "ModelError", "Cancelled", "RequestError", "Edit",
    "MAX_STEPS", "MAX_VARIATIONS",
]



@dataclass
class GeneratedClip:
    audio: np.ndarray  # float32: mono [samples], or [channels, samples] from a stereo route
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


class _Runner:
    """One ONNX stage as a cascade stage: v = runner(x, t, **cond). On CUDA the conditioning and
    the output stay bound on the device while the same conditioning arrays come back each step."""

    def __init__(self, session: ort.InferenceSession, output: str, device: str) -> None:
        self.session = session
        self.output = output
        self.device = device
        self._bound: tuple[int, ...] = ()
        self._io = self._x = self._t = self._v = None

    def __call__(self, x: np.ndarray, t: np.ndarray, **cond: np.ndarray) -> np.ndarray:
        if self.device != "cuda":
            return self.session.run([self.output], {**cond, "x": x, "t": t})[0]
        key = (x.shape, *(id(v) for v in cond.values()))
        if key != self._bound:
            self._bind(x.shape, cond)
            self._bound = key
        self._x.update_inplace(np.ascontiguousarray(x, dtype=np.float32))
        self._t.update_inplace(np.ascontiguousarray(t, dtype=np.float32))
        self.session.run_with_iobinding(self._io)
        return self._v.numpy()

    def _bind(self, shape: tuple[int, ...], cond: dict[str, np.ndarray]) -> None:
        io = self.session.io_binding()
        for name, arr in cond.items():
            io.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr), "cuda", 0))
        self._x = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, "cuda", 0)
        self._t = ort.OrtValue.ortvalue_from_shape_and_type((shape[0],), np.float32, "cuda", 0)
        self._v = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, "cuda", 0)
        io.bind_ortvalue_input("x", self._x)
        io.bind_ortvalue_input("t", self._t)
        io.bind_ortvalue_output(self.output, self._v)
        self._io = io

    def end(self) -> None:
        self._bound, self._io, self._x, self._t, self._v = (), None, None, None, None


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
        self.cascade = Cascade(manifest, self._encode, dict(self._runners), threads=self.threads)

    def _encode(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        ids, mask = self._tokenizer(prompts)
        states = self._text.run([self.manifest.text_encoder.output], {"input_ids": ids, "attention_mask": mask})[0]
        return states, mask

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
        allowed = self.manifest.decoders
        if decoder not in allowed:
            why = (" (this model's wave route generates audio: Griffin-Lim decodes log-mels)"
                   if decoder == GRIFFIN_LIM else "")
            raise RequestError(f"unknown decoder {decoder!r} for this model: one of {', '.join(allowed)}{why}")
        return decoder

    def check(self, req: Request, edit: bool = False) -> tuple[int, float, str, float]:
        """(steps, guidance, sampler, seconds) of a request, or RequestError with the reason: the
        request's own limits (bridge.request), then this model's guidance range, samplers,
        decoders and duration range. `edit`: the request edits a source (the model's edit
        guidance is its default)."""
        req = req.validated()
        gen = self.manifest.generator
        steps = gen.default_steps if req.steps is None else req.steps
        g = gen.guidance
        guidance = (g.default_for(edit) if g else 1.0) if req.guidance is None else float(req.guidance)
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
        """Grid frames covering `seconds`, rounded up to the multiple the U-Nets need."""
        return self.cascade.frames_for(seconds)

    @property
    def periodic_loops(self) -> bool:
        """Whether this model samples loops periodic (bridge.periodic): a log-mel generator and
        what follows it on circles; the wave route's and superres stages' loops are crossfaded by
        the clip pipeline."""
        return self.manifest.route in ("mel", "fine") and self.manifest.superres is None

    def loop_seconds(self, req: Request, seconds: float) -> float | None:
        """The length of the periodic loop a request asks for (whole bars at its tempo, or its
        seconds in free time), or None when it asks for no loop or this model makes none."""
        out = req.output
        if not (out.loop and not out.loop_crossfade and self.periodic_loops):
            return None
        c = req.controls
        return whole_bars_seconds(seconds, c.bpm, c.meter, *self.manifest.controls.seconds_range)

    def generate(self, req: Request, progress: Progress | None = None,
                 cancel: threading.Event | None = None, edit: Edit | None = None) -> list[GeneratedClip]:
        """The request's clips, trimmed to its duration and kept below full scale; a loop request
        (without `edit`) gives periodic loops of exactly whole bars (`info["periodic"]`). `edit`: a
        source as a log-mel of the manifest's mel front-end ([bins, frames], any length: cut or
        padded to the request's frames, padding never held) with the frames to hold and the strength."""
        req = req.validated()
        steps, guidance, sampler, seconds = self.check(req, edit=edit is not None)
        decoder = self.decoder_for(req)
        loop = self.loop_seconds(req, seconds) if edit is None else None
        seconds = loop or seconds
        plan = Plan(req.prompt, req.controls, int(req.seed), int(req.variations), steps, guidance, sampler,
                    seconds, decoder, edit=self._fit(edit, seconds) if edit is not None else None,
                    loop=loop is not None)
        try:
            audio, timings = self.cascade.run(plan, progress, cancel)
        finally:
            for r in self._runners.values():
                r.end()
        n = plan.variations
        if plan.loop:  # the circle's whole frames -> the loop's exact samples
            audio = resample_periodic(audio, int(round(seconds * self.sample_rate)))
        else:
            audio = audio[..., :min(timings["frames"] * self.manifest.hop, audio.shape[-1],
                                    int(round(seconds * self.sample_rate)))]
        audio = audio.astype(np.float32, copy=False)
        # headroom: a decoded clip whose peak passes full scale is turned down to PEAK_CEILING (the
        # clip pipeline sets loudness later; this keeps --raw output and analysis unclipped)
        flat = np.abs(np.nan_to_num(audio)).reshape(n, -1)
        peaks = flat.max(axis=1) if flat.size else np.zeros(n)
        gains = np.where(peaks > PEAK_CEILING, PEAK_CEILING / np.maximum(peaks, 1e-12), 1.0)
        audio = (audio * gains.reshape((n,) + (1,) * (audio.ndim - 1))).astype(np.float32)
        gain_db = [round(float(20 * np.log10(g)), 2) for g in gains]
        info = {"provider": self.provider, "variants": dict(self.variants), "sampler": sampler,
                "decoder": decoder, "seconds": seconds, "route": self.manifest.route, "periodic": plan.loop,
                **timings}
        return [
            GeneratedClip(audio=np.ascontiguousarray(audio[i]), sample_rate=self.sample_rate,
                          prompt=req.prompt, controls=req.controls, seed=plan.seed + i, index=i,
                          model_id=self.model_id, steps=steps, guidance=guidance,
                          info={**info, "headroom_gain_db": gain_db[i]})
            for i in range(n)
        ]

    def _fit(self, edit: Edit, seconds: float) -> Edit:
        """The edit's source normalised and cut or padded to the frames of a `seconds` request."""
        man = self.manifest
        if man.route == "wave":
            raise RequestError("edits work in a log-mel generator's space; this model's route is " + man.route)
        gen = man.generator
        if isinstance(edit.strength, bool) or not isinstance(edit.strength, int | float) \
                or not 0.0 < float(edit.strength) <= 1.0:
            raise RequestError(f"strength must be in (0, 1] (0 = the source, 1 = a new clip), got {edit.strength!r}")
        src = np.asarray(edit.source, np.float32)
        if src.ndim != 2 or src.shape[0] != gen.channels:
            raise RequestError(f"the source must be a [{gen.channels}, frames] log-mel, got {src.shape}")
        frames = self.frames_for(seconds)
        known = np.ones(src.shape[1], bool) if edit.known is None else np.asarray(edit.known, bool)
        if known.shape != (src.shape[1],):
            raise RequestError(f"known marks {known.shape[0]} frames, the source has {src.shape[1]}")
        norm = (src - gen.mel_norm["mean"]) / gen.mel_norm["scale"]
        if src.shape[1] < frames:
            norm = np.pad(norm, ((0, 0), (0, frames - src.shape[1])), mode="edge")
            known = np.pad(known, (0, frames - src.shape[1]))
        return Edit(norm[:, :frames], known[:frames] if edit.known is not None else None, edit.strength)

    def features(self, audio: np.ndarray, rate: int) -> np.ndarray:
        """The generator's log-mel ([bins, frames] at the grid rate) of mono [n] or [channels, n]
        audio at `rate`: the 80-bin mel of the mono mix (mel route), or the COARSE mel of its mid
        (and, where the generator makes them, the side bands of a stereo source; a mono one has none)."""
        from n2m.bridge.features import CoarseSpec, coarse_mel, coarse_rows, fine_mel, log_mel
        from n2m.bridge.pipeline import resample

        x = np.asarray(audio, np.float32)
        spec = MelSpec(**self.manifest.mel)
        cs = CoarseSpec.from_dict(self.manifest.coarse) if self.manifest.coarse is not None else None
        if cs is not None and cs.side_bands:  # a mono source is centred: no side
            stereo = np.stack([x, x]) if x.ndim == 1 else x if x.shape[0] == 2 else np.stack([x.mean(axis=0)] * 2)
            return coarse_rows(fine_mel(np.stack([resample(c, int(rate), spec.sample_rate) for c in stereo]), spec), cs)
        mono = x if x.ndim == 1 else x.mean(axis=0)
        mel = log_mel(resample(mono, int(rate), spec.sample_rate), spec)
        return mel if cs is None else coarse_mel(mel, cs)

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
        try:
            return self.cascade.superres(audio, list(seeds), keep_low)
        finally:
            self._runners["superres"].end()


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
