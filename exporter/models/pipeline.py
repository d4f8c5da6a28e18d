"""Checkpoints sampled one stage at a time, through the runtime's own cascade code (bridge.cascade).

Training previews, tests and `n2m eval` on checkpoints use these runners; each wraps a torch
module as a stage callable (exporter.models.cascade.TorchStage) and calls the same stage sampler
the runtime calls, so seeds, guidance and noise order are the runtime's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from n2m.bridge.cascade import sample_audio_stage, sample_generator, sample_vocoder
from n2m.bridge.controls import Controls
from n2m.bridge.features import FINE, MelSpec, coarse_to_fine
from n2m.bridge.grid import beat_grid
from n2m.bridge.griffinlim import griffin_lim as _griffin_lim
from n2m.bridge.manifest import StageSpec
from n2m.bridge.schedule import Schedule
from n2m.exporter.models.cascade import RouteDefaults, TorchStage, load_checkpoint, stage_spec
from n2m.exporter.models.unet import UNet1d, Vocoder1d

__all__ = ["SampleOptions", "load_checkpoint", "frames_for", "GeneratorRunner", "VocoderRunner",
           "AudioCascaderRunner", "griffin_lim", "coarse_preview"]


@dataclass
class SampleOptions:
    steps: int = 25
    guidance: float = 3.0
    sampler: str = "ddim"
    vocoder_steps: int = 12
    vocoder_sampler: str = "ddim"


def frames_for(seconds: float, multiple: int, spec: MelSpec = MelSpec()) -> int:
    """Grid frames covering `seconds`, rounded up to the U-Net's frame multiple."""
    f = int(np.ceil(seconds * spec.frame_rate))
    return max(multiple, int(np.ceil(f / multiple)) * multiple)


def _spec(model: torch.nn.Module, schedule: Schedule) -> StageSpec:
    from n2m.exporter.export.onnx_unet import OUTPUT, input_names, stage_name

    name = stage_name(model)
    return stage_spec(name, model, {"schedule": schedule.to_dict()}, RouteDefaults(), input_names(name), OUTPUT)


class GeneratorRunner:
    """Guided sampling of log-mel from a generator U-Net (or of audio from a wavegen)."""

    def __init__(self, model: UNet1d, text_cache, schedule: Schedule | None = None) -> None:
        self.model = model
        self.cfg = model.cfg
        self.text = text_cache
        self.spec = _spec(model, schedule or Schedule())
        self.mel = MelSpec()

    def generate(self, prompt: str, controls: Controls, frames: int, seed: int,
                 opts: SampleOptions | None = None) -> np.ndarray:
        """[bins, frames] log-mel (de-normalised); a wavegen gives float32 audio [frames * hop]."""
        opts = opts or SampleOptions()
        if frames % self.cfg.frame_multiple:
            raise ValueError(f"frames {frames} not a multiple of {self.cfg.frame_multiple}")
        states, mask = (t.numpy() for t in self.text.batch([prompt, ""]))
        grid = beat_grid(frames, self.mel.frame_rate, controls.bpm, controls.meter)
        x = sample_generator(TorchStage(self.model), self.spec, states, mask, controls, grid, [seed],
                             (self.cfg.in_channels, frames * self.cfg.hop), opts.steps, opts.guidance, opts.sampler)
        if self.cfg.wave:
            return (x[0, 0] / self.cfg.audio_scale).astype(np.float32)
        return x[0] * self.cfg.mel_scale + self.cfg.mel_mean


class VocoderRunner:
    """Sampling audio from a log-mel with the vocoder cascader."""

    def __init__(self, model: Vocoder1d, schedule: Schedule | None = None) -> None:
        self.model = model
        self.cfg = model.cfg
        self.spec = _spec(model, schedule or Schedule())

    def vocode(self, log_mel: np.ndarray, seed: int, steps: int = 12, sampler: str = "ddim") -> np.ndarray:
        """float32 audio [frames * hop] from a (de-normalised) log-mel [bins, frames]."""
        n = log_mel.shape[1] * self.cfg.hop
        out = sample_vocoder(TorchStage(self.model), self.spec, log_mel[None], [seed], n, steps, sampler=sampler)
        return out[0].astype(np.float32)


class AudioCascaderRunner:
    """An audio-conditioned cascader (wave route 3.2 -> 16 kHz, or superres 16 -> 48 kHz) run the way
    the engine runs it: upsample, noise-augment the conditioning to `aug`, sample. Superres output
    is the stage's own, without the runtime's low-band crossover."""

    def __init__(self, model: Vocoder1d, schedule: Schedule | None = None) -> None:
        self.model = model
        self.cfg = model.cfg
        self.spec = _spec(model, schedule or Schedule())

    def run(self, low: np.ndarray, seed: int, steps: int = 12, sampler: str = "ddim",
            aug: float = 0.0) -> np.ndarray:
        """float32 audio [len(low) * factor] at the stage's rate; len(low) * factor must be a
        multiple of the stage's hop. Noise: the conditioning's augmentation first, then the sample's."""
        n = len(low) * self.cfg.up_factor
        if n % self.cfg.hop:
            raise ValueError(f"{n} samples is not a multiple of the {self.cfg.stage}'s hop {self.cfg.hop}")
        from dataclasses import replace

        spec = replace(self.spec, cond_aug=float(aug))
        out = sample_audio_stage(TorchStage(self.model), spec, np.asarray(low, np.float32)[None], [seed], steps,
                                 label=self.spec.name, keep_low=False, sampler=sampler)
        return out[0]


def griffin_lim(log_mel: np.ndarray, spec: MelSpec = MelSpec(), seed: int = 0) -> np.ndarray:
    """The runtime's Griffin-Lim decoder (bridge.griffinlim), kept below full scale as the engine
    keeps its clips."""
    audio = _griffin_lim(log_mel, spec, seed=seed)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    return (audio * (0.98 / peak) if peak > 0.98 else audio).astype(np.float32)


def coarse_preview(coarse: np.ndarray) -> np.ndarray:
    """44.1 kHz mono audio of a COARSE mel: its frames repeated to 100 fps, the band above left at
    the floor, Griffin-Lim on the FINE spec; peak-normalised to -1 dBFS when louder."""
    from n2m.bridge.griffinlim import griffin_lim as gl

    audio = gl(coarse_to_fine(np.nan_to_num(coarse, nan=np.log(FINE.log_floor))), FINE, n_iter=32)
    peak = float(np.abs(audio).max())
    return audio * (0.891 / peak) if peak > 0.891 else audio
