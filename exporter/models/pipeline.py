"""Run the torch cascade with the runtime's numpy samplers: prompt -> log-mel -> 16 kHz audio, or on
the waveform route prompt -> 3.2 kHz audio -> 16 kHz audio (-> 48 kHz with a superres stage).

Used for training samples, tests and `n2m eval` on checkpoints. Classifier-free guidance follows
the cascade convention: the unconditional branch gets the MiniLM states of "" and every control
unspecified (bpm 0, indices 0, zero grid).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from n2m.bridge.controls import Controls
from n2m.bridge.features import FINE, MelSpec, coarse_to_fine
from n2m.bridge.grid import beat_grid
from n2m.bridge.resample import upsample
from n2m.bridge.sampling import SAMPLERS
from n2m.bridge.schedule import Schedule, timesteps
from n2m.exporter.models.unet import UNet1d, UNetConfig, Vocoder1d, VocoderConfig, build_model


@dataclass
class SampleOptions:
    steps: int = 25
    guidance: float = 3.0
    sampler: str = "ddim"
    vocoder_steps: int = 12
    vocoder_sampler: str = "ddim"


def load_checkpoint(path: str | Path, use_ema: bool = True) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, checkpoint dict) from a training checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path} is not an n2m training checkpoint (no 'config'/'model')")
    model = build_model(ckpt["config"])
    state = ckpt.get("ema") if use_ema and ckpt.get("ema") else ckpt["model"]
    model.load_state_dict(state)
    model.eval()
    return model, ckpt


def frames_for(seconds: float, multiple: int, spec: MelSpec = MelSpec()) -> int:
    """Mel frames covering `seconds`, rounded up to the U-Net's frame multiple."""
    f = int(np.ceil(seconds * spec.frame_rate))
    return max(multiple, int(np.ceil(f / multiple)) * multiple)


class GeneratorRunner:
    """Guided sampling of normalised log-mel from a generator U-Net (or of audio from a wavegen)."""

    def __init__(self, model: UNet1d, text_cache, schedule: Schedule | None = None) -> None:
        self.model = model
        self.cfg: UNetConfig = model.cfg
        self.text = text_cache
        self.schedule = schedule or Schedule()
        self.spec = MelSpec()

    @torch.no_grad()
    def generate(self, prompt: str, controls: Controls, frames: int, seed: int,
                 opts: SampleOptions | None = None) -> np.ndarray:
        """[80, frames] log-mel (de-normalised); a wavegen gives float32 audio [frames * hop]."""
        opts = opts or SampleOptions()
        if frames % self.cfg.frame_multiple:
            raise ValueError(f"frames {frames} not a multiple of {self.cfg.frame_multiple}")
        states, mask = self.text.batch([prompt, ""])
        idx = controls.indices()
        bpm = float(controls.bpm or 0.0)
        grid = beat_grid(frames, self.spec.frame_rate, controls.bpm, controls.meter)
        cond = {
            "text": states, "text_mask": mask,
            "bpm": torch.tensor([bpm, 0.0]),
            "key": torch.tensor([idx["key"], 0]), "mode": torch.tensor([idx["mode"], 0]),
            "meter": torch.tensor([idx["meter"], 0]),
            "grid": torch.from_numpy(np.stack([grid, np.zeros_like(grid)])),
        }
        g = float(opts.guidance)

        def model(z: np.ndarray, t: float) -> np.ndarray:
            zz = torch.from_numpy(np.repeat(z, 2, axis=0))
            v = self.model(zz, torch.full((2,), t, dtype=torch.float32), **cond).numpy()
            return (v[1:2] + g * (v[0:1] - v[1:2])).astype(np.float32)

        rng = np.random.default_rng(seed)
        z = rng.standard_normal((1, self.cfg.in_channels, frames * self.cfg.hop), dtype=np.float32)
        sampler = SAMPLERS[opts.sampler]
        kwargs = {"rng": rng} if opts.sampler == "ancestral" else {}
        x = sampler(model, z, timesteps(opts.steps), self.schedule, **kwargs)
        if self.cfg.wave:
            return (x[0, 0] / self.cfg.audio_scale).astype(np.float32)
        return x[0] * self.cfg.mel_scale + self.cfg.mel_mean


class VocoderRunner:
    """Sampling 16 kHz audio from a log-mel with the vocoder cascader."""

    def __init__(self, model: Vocoder1d, schedule: Schedule | None = None) -> None:
        self.model = model
        self.cfg: VocoderConfig = model.cfg
        self.schedule = schedule or Schedule()

    @torch.no_grad()
    def vocode(self, log_mel: np.ndarray, seed: int, steps: int = 12, sampler: str = "ddim") -> np.ndarray:
        """float32 audio [frames * hop] from a (de-normalised) log-mel [80, frames]."""
        mel = torch.from_numpy(((log_mel - self.cfg.mel_mean) / self.cfg.mel_scale)[None].astype(np.float32))
        n = log_mel.shape[1] * self.cfg.hop

        def model(z: np.ndarray, t: float) -> np.ndarray:
            return self.model(torch.from_numpy(z), torch.full((1,), t, dtype=torch.float32), mel).numpy()

        rng = np.random.default_rng(seed)
        z = rng.standard_normal((1, 1, n), dtype=np.float32)
        kwargs = {"rng": rng} if sampler == "ancestral" else {}
        x = SAMPLERS[sampler](model, z, timesteps(steps), self.schedule, **kwargs)
        return (x[0, 0] / self.cfg.audio_scale).astype(np.float32)


class AudioCascaderRunner:
    """An audio-conditioned cascader (wave route 3.2 -> 16 kHz, or superres 16 -> 48 kHz), run the way
    the engine runs it: upsample, noise-augment the conditioning to `aug`, sample."""

    def __init__(self, model: Vocoder1d, schedule: Schedule | None = None) -> None:
        self.model = model
        self.cfg: VocoderConfig = model.cfg
        self.schedule = schedule or Schedule()

    def condition(self, low: np.ndarray, aug: float, rng: np.random.Generator) -> np.ndarray:
        """[1, 1, n * factor] conditioning from low-rate audio [n]: upsampled, scaled, augmented."""
        up = upsample(np.asarray(low, np.float32), self.cfg.up_factor)[None, None] * self.cfg.audio_scale
        noise = rng.standard_normal(up.shape, dtype=np.float32)
        return self.schedule.add_noise(up, noise, np.full((1,), aug, np.float64)).astype(np.float32)

    @torch.no_grad()
    def run(self, low: np.ndarray, seed: int, steps: int = 12, sampler: str = "ddim",
            aug: float = 0.0) -> np.ndarray:
        """float32 audio [len(low) * factor] at the stage's rate; len(low) * factor must be a
        multiple of the stage's hop. Noise: the conditioning's augmentation first, then the sample's."""
        rng = np.random.default_rng(seed)
        cond = torch.from_numpy(self.condition(low, aug, rng))
        n = cond.shape[-1]
        if n % self.cfg.hop:
            raise ValueError(f"{n} samples is not a multiple of the {self.cfg.stage}'s hop {self.cfg.hop}")
        a = torch.full((1,), float(aug), dtype=torch.float32)

        def model(z: np.ndarray, t: float) -> np.ndarray:
            return self.model(torch.from_numpy(z), torch.full((1,), t, dtype=torch.float32), cond, a).numpy()

        z = rng.standard_normal((1, 1, n), dtype=np.float32)
        kwargs = {"rng": rng} if sampler == "ancestral" else {}
        x = SAMPLERS[sampler](model, z, timesteps(steps), self.schedule, **kwargs)
        return (x[0, 0] / self.cfg.audio_scale).astype(np.float32)


def griffin_lim(log_mel: np.ndarray, spec: MelSpec = MelSpec(), n_iter: int = 32) -> np.ndarray:
    """A quick audio rendering of a log-mel without the vocoder (training previews)."""
    import librosa

    power = np.exp(log_mel.astype(np.float64))
    audio = librosa.feature.inverse.mel_to_audio(
        power, sr=spec.sample_rate, n_fft=spec.n_fft, hop_length=spec.hop, fmin=spec.fmin,
        fmax=spec.fmax, power=2.0, n_iter=n_iter)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    return (audio / peak * 0.7 if peak > 0 else audio).astype(np.float32)


def coarse_preview(coarse: np.ndarray) -> np.ndarray:
    """44.1 kHz mono audio of a COARSE mel: its frames repeated to 100 fps, the band above left at
    the floor, Griffin-Lim on the FINE spec; peak-normalised to -1 dBFS when louder."""
    from n2m.bridge.griffinlim import griffin_lim as gl

    audio = gl(coarse_to_fine(np.nan_to_num(coarse, nan=np.log(FINE.log_floor))), FINE, n_iter=32)
    peak = float(np.abs(audio).max())
    return audio * (0.891 / peak) if peak > 0.891 else audio
