"""What `n2m eval` evaluates: an exported cascade run by the engine, or checkpoints run in torch
through the same cascade code (exporter.models.pipeline). Each has
model.render(prompt, controls, seconds, seed) -> EvalClip (the model's native output and its 16 kHz
mono mix, what the tempo, key and old style meters take), and model(...) -> that 16 kHz mono mix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from n2m.bridge.controls import Controls
from n2m.exporter.metrics.adherence import SR


@dataclass
class EvalOptions:
    # None: an exported cascade's own defaults (its manifest: what `n2m generate` uses); for
    # checkpoints, those `n2m export` writes by default (25 steps, guidance 3, dpmpp_2m)
    steps: int | None = None
    guidance: float | None = None
    sampler: str | None = None
    vocoder_steps: int = 12
    max_seconds: float = 10.0
    seed: int = 0
    decoder: str | None = None  # exported cascades: the cascader stage or "griffin-lim" (None = the model's)


@dataclass
class EvalClip:
    """One generated clip: `native` as the model makes it (mono [n] or [channels, n] at `rate`),
    and `audio16k`, its mono mix at 16 kHz."""

    native: np.ndarray
    rate: int
    audio16k: np.ndarray

    @classmethod
    def of(cls, native: np.ndarray, rate: int) -> EvalClip:
        x = np.asarray(native, dtype=np.float32)
        if x.ndim == 2 and x.shape[0] == 1:
            x = x[0]
        mono = x.mean(axis=0) if x.ndim == 2 else x
        if rate != SR:
            import soxr

            mono = soxr.resample(mono, rate, SR)
        return cls(x, int(rate), np.asarray(mono, dtype=np.float32))

    @property
    def channels(self) -> int:
        return 1 if self.native.ndim == 1 else int(self.native.shape[0])


class _Renders:
    """A model `n2m eval` runs: render() gives an EvalClip; calling the model gives its 16 kHz mono mix."""

    def render(self, prompt: str, controls: Controls, seconds: float, seed: int) -> EvalClip:
        raise NotImplementedError

    def __call__(self, prompt: str, controls: Controls, seconds: float, seed: int) -> np.ndarray:
        return self.render(prompt, controls, seconds, seed).audio16k


class TorchCascade(_Renders):
    """Checkpoints run in torch with the numpy samplers (exporter.models.pipeline): 16 kHz mono."""

    def __init__(self, generator: str | Path, vocoder: str | Path | None, opts: EvalOptions) -> None:
        from n2m.exporter.models.pipeline import GeneratorRunner, VocoderRunner, load_checkpoint
        from n2m.exporter.textenc import TextCache

        gen, ck = load_checkpoint(_ckpt_path(generator))
        if ck["stage"] != "generator":
            raise ValueError(f"{generator} is a {ck['stage']} checkpoint, expected the generator")
        self.gen = GeneratorRunner(gen, TextCache(max_tokens=int(ck.get("text_max_tokens", 40))))
        self.voc = None
        if vocoder is not None:
            voc, vk = load_checkpoint(_ckpt_path(vocoder))
            if vk["stage"] != "vocoder":
                raise ValueError(f"{vocoder} is a {vk['stage']} checkpoint, expected the vocoder")
            self.voc = VocoderRunner(voc)
        opts.steps = 25 if opts.steps is None else opts.steps
        opts.guidance = 3.0 if opts.guidance is None else opts.guidance
        opts.sampler = opts.sampler or "dpmpp_2m"
        self.opts = opts
        self.id = f"torch:{generator}+{vocoder or 'griffin-lim'}"

    def render(self, prompt: str, controls: Controls, seconds: float, seed: int) -> EvalClip:
        from n2m.exporter.models.pipeline import SampleOptions, frames_for, griffin_lim

        o = self.opts
        frames = frames_for(seconds, self.gen.cfg.frame_multiple)
        mel = self.gen.generate(prompt, controls, frames, seed,
                                SampleOptions(steps=o.steps, guidance=o.guidance, sampler=o.sampler))
        if self.voc is None:
            audio = griffin_lim(mel)
        else:
            audio = self.voc.vocode(mel, seed=seed, steps=o.vocoder_steps, sampler=o.sampler)
        return EvalClip.of(audio[: int(round(seconds * SR))], SR)


class OnnxCascade(_Renders):
    """An exported cascade run by the runtime engine (n2m.bridge.engine)."""

    def __init__(self, model_dir: str | Path, opts: EvalOptions, threads: int | None,
                 precision: str | None = None) -> None:
        from n2m.bridge.engine import Engine

        self.engine = Engine.load(model_dir, provider="cpu", threads=threads, precision=precision)
        gen = self.engine.manifest.generator
        opts.steps = gen.default_steps if opts.steps is None else opts.steps
        opts.guidance = (gen.guidance.default if gen.guidance else 1.0) if opts.guidance is None else opts.guidance
        opts.sampler = opts.sampler or gen.default_sampler
        opts.decoder = opts.decoder or self.engine.manifest.default_decoder
        self.opts = opts  # resolved, so the report says what ran
        self.id = f"onnx:{model_dir}" + (f"+{opts.decoder}" if opts.decoder else "")
        if precision:
            used = sorted(set(self.engine.variants.values()))
            self.id += f"@{'/'.join(used)}"

    def render(self, prompt: str, controls: Controls, seconds: float, seed: int) -> EvalClip:
        from dataclasses import replace

        from n2m.bridge.engine import Request

        c = replace(controls, bars=None, seconds=seconds).validated()
        clip = self.engine.generate(Request(prompt, c, seed, steps=self.opts.steps,
                                                      guidance=self.opts.guidance,
                                                      sampler=self.opts.sampler,
                                                      decoder=self.opts.decoder))[0]
        return EvalClip.of(clip.audio, clip.sample_rate)


def _ckpt_path(p: str | Path) -> Path:
    p = Path(p)
    return p / "last.pt" if p.is_dir() else p


def open_model(model: str, vocoder: str | None, opts: EvalOptions, threads: int | None,
               precision: str | None = None):
    path = Path(model)
    if path.is_dir() and (path / "manifest.json").is_file():
        if vocoder == "griffin-lim":
            opts.decoder = "griffin-lim"
        elif vocoder:
            raise ValueError("an exported cascade brings its own vocoder: --vocoder takes only "
                             "'griffin-lim' with it (or use --decoder)")
        return OnnxCascade(path, opts, threads, precision)
    if precision:
        raise ValueError("--precision chooses among an exported cascade's graphs; give its folder")
    if "," in model:
        gen, voc = model.split(",", 1)
    elif path.is_dir() and (path / "generator.pt").is_file():
        gen, voc = str(path / "generator.pt"), str(path / "vocoder.pt")
    else:
        gen, voc = model, None
    if vocoder == "griffin-lim":
        voc = None
    elif vocoder:
        voc = vocoder
    for p in (gen, voc):
        if p is not None and not _ckpt_path(p).is_file():
            raise FileNotFoundError(f"{_ckpt_path(p)} not found")
    if voc is None and vocoder != "griffin-lim":
        raise ValueError("give the vocoder too: MODEL as GEN.pt,VOC.pt, or --vocoder PATH|griffin-lim")
    return TorchCascade(gen, voc, opts)
