"""A training run's config (`n2m train CONFIG`): the JSON fields of `TrainConfig` and their checks.
The files are in exporter/configs/ (their README lists them)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from n2m.exporter.data import DropoutConfig
from n2m.exporter.models.unet import UNetConfig, VocoderConfig, config_from_dict
from n2m.exporter.textenc import DEFAULT_MAX_TOKENS


@dataclass
class TrainConfig:
    model: dict
    corpus: str = "corpus/v1"  # relative to where training runs (the repo root), or --corpus
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 500
    steps: int = 100_000  # target (ETA and the default stopping point)
    max_hours: float = 0.0  # also stop once this much training time has accumulated (0 = no limit)
    grad_clip: float = 1.0
    # "constant" after warm-up, or "cosine_time": cosine decay to lr * lr_min_ratio over max_hours of
    # training time (a time budget is what a CPU run has; steps/s varies with machine load)
    lr_schedule: str = "constant"
    lr_min_ratio: float = 0.1
    ema_decay: float = 0.999
    crop_frames: int = 512  # generator, wavegen: 10.24 s crops (50 Hz grid frames)
    seed: int = 0
    threads: int = 1
    checkpoint_minutes: float = 5.0
    log_every: int = 10
    sample_minutes: float = 30.0  # 0 = never
    sample_prompts: list[str] = field(default_factory=lambda: [
        "techno loop, 128 bpm, A minor", "calm ambient pad in C major"])
    sample_seconds: float = 5.0
    sample_steps: int = 25
    sample_guidance: float = 3.0
    sample_vocoder: str = ""  # generator previews: a vocoder checkpoint (or run dir); "" = Griffin-Lim
    text_max_tokens: int = DEFAULT_MAX_TOKENS
    dropout: dict = field(default_factory=lambda: asdict(DropoutConfig()))
    # spectral stage: with probability cond_generator_prob a batch's COARSE conditioning is replaced
    # by what this generator checkpoint makes of it (the crop noised to a time in cond_generator_t,
    # then cond_generator_steps DDIM steps at cond_generator_guidance), so that the cascader learns
    # on the kind of COARSE it is given at run time
    cond_generator: str = ""
    cond_generator_prob: float = 0.5
    cond_generator_t: list[float] = field(default_factory=lambda: [0.5, 1.0])
    cond_generator_steps: int = 4
    cond_generator_guidance: float = 3.0
    # side_x0 generators: the side rows' x0 error weighted min(1 + SNR(t), cap); 1 weighs every noise
    # level alike, a larger cap leans toward the low-noise end (where v's loss puts its weight)
    side_x0_snr_cap: float = 1.0

    def stage_config(self) -> UNetConfig | VocoderConfig:
        return config_from_dict(self.model)


class ConfigError(ValueError):
    """A training config that cannot be used; the message names the file and the problem."""


def load_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config {path} not found (see exporter/configs/ for examples)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or "model" not in raw:
        raise ConfigError(f"{path}: needs a 'model' object with a 'stage' field")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown fields {unknown}; known: {sorted(known)}")
    try:
        cfg = TrainConfig(**raw)
        cfg.stage_config()
        if cfg.lr_schedule not in ("constant", "cosine_time"):
            raise ValueError(f"lr_schedule {cfg.lr_schedule!r} is not 'constant' or 'cosine_time'")
        DropoutConfig(**cfg.dropout)
        t = list(cfg.cond_generator_t)
        if len(t) != 2 or not 0.0 < t[0] <= t[1] <= 1.0:
            raise ValueError(f"cond_generator_t {cfg.cond_generator_t} is not [lo, hi] with 0 < lo <= hi <= 1")
        if not 0.0 <= cfg.cond_generator_prob <= 1.0:
            raise ValueError(f"cond_generator_prob {cfg.cond_generator_prob} is outside 0..1")
        if cfg.cond_generator_steps < 1 or cfg.cond_generator_guidance < 0:
            raise ValueError("cond_generator_steps must be >= 1 and cond_generator_guidance >= 0")
        if cfg.side_x0_snr_cap < 1.0:
            raise ValueError(f"side_x0_snr_cap {cfg.side_x0_snr_cap} is below 1 (1 weighs every noise level alike)")
        if cfg.side_x0_snr_cap != 1.0 and getattr(cfg.stage_config(), "side_sd", ()):
            raise ValueError("side_x0_snr_cap is for an x0 side output; a preconditioned one (side_sd) weighs its "
                             "rows by 1 / c_out^2 and takes no cap")
        if cfg.cond_generator and cfg.stage_config().stage != "spectral":
            raise ValueError("cond_generator is for the spectral stage only")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return cfg
