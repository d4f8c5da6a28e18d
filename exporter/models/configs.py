"""The stages' configs (saved in checkpoints and manifests), their checks, and the tiny configs
of tests and fixtures. What each field means is in exporter.models.unet's docstring."""

from __future__ import annotations

import math
from dataclasses import dataclass

from n2m.bridge.features import COARSE, FINE, SIDE_MODES

TEXT_DIM = 384
N_KEYS = 13  # 0 = unspecified, 1..12 = TONICS
N_MODES = 5  # 0 = unspecified, 1..4 = MODES
N_METERS = 4  # 0 = unspecified, 1..3 = METERS
REPRESENTATIONS = ("mel", "coarse", "fine")


@dataclass
class UNetConfig:
    """Generator U-Net (text + controls -> log-mel v-prediction).

    The same class is the waveform route's generator (``stage="wavegen"``): ``strides`` gives each
    level transition its own downsampling factor (empty = 2 everywhere, the log-mel generator), the
    signal is 1 channel of low-rate audio (times ``audio_scale``), and the beat grid enters every
    level at the bottleneck rate instead of being stacked onto the input.
    """

    stage: str = "generator"
    in_channels: int = 80
    out_channels: int = 80
    grid_channels: int = 4
    channels: tuple[int, ...] = (48, 96, 144, 192)
    blocks_per_level: int = 1
    kernel_size: int = 5
    attn_levels: tuple[int, ...] = (2, 3)  # levels (0 = full rate) with self + cross attention
    head_dim: int = 48
    groups: int = 8
    emb_dim: int = 192  # timestep/conditioning embedding width
    ctx_dim: int = 192  # cross-attention context width
    text_dim: int = TEXT_DIM
    dropout: float = 0.0
    mel_mean: float = -4.5
    mel_scale: float = 7.0
    # waveform route ("wavegen"): per-level strides whose product is the samples per grid frame
    # (3200 Hz / 50 Hz = 64), the audio's scale and rate
    strides: tuple[int, ...] = ()
    audio_scale: float = 1.0
    sample_rate: int = 0
    representation: str = "mel"  # generator: "mel" (80-bin 16 kHz) or "coarse" (bridge.features.COARSE)
    # the spectral cascader ("spectral", representation "fine"): the noise augmentation drawn in
    # [0, cond_aug_max] for its COARSE conditioning in training
    cond_aug_max: float = 0.0
    # the spectral cascader's side channels: "absolute" (the side's log-mel) or "relative" (the side's
    # log-mel minus the mid's: a centred source is a steady level below the mid, whatever the mid does)
    side: str = "absolute"
    # a coarse generator's side-band rows after the COARSE mel (bridge.features.side_bands): the
    # generator, which reads the text, decides the stereo image; 0: the cascader alone does
    side_bands: int = 0
    # the side-band rows' output is their clean estimate x0, turned into v inside the network with
    # the schedule's alpha and sigma at t (v = (alpha z - x0) / sigma): a v-output has to learn to
    # pass the rows' noise through, and barely does, so sampled rows kept it; an x0-output cannot
    side_x0: bool = False
    # preconditioned side output (with side_x0): the side rows' per-band data mean and sd in their
    # normalised units (python -m n2m.exporter.sidestats); x0 = mean + c_skip(t) (z - alpha mean) +
    # c_out(t) F, so nearly clean rows pass through and F is unit-scale at every t; empty: x0 = F
    side_mean: tuple[float, ...] = ()
    side_sd: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.attn_levels = tuple(int(a) for a in self.attn_levels)
        self.strides = tuple(int(s) for s in self.strides)
        self.side_mean = tuple(float(m) for m in self.side_mean)
        self.side_sd = tuple(float(d) for d in self.side_sd)
        validate_common(self.channels, self.groups, self.kernel_size, self.blocks_per_level)
        if self.stage not in ("generator", "wavegen", "spectral"):
            raise ValueError(f"UNetConfig.stage must be 'generator', 'wavegen' or 'spectral', got {self.stage!r}")
        if self.stage == "wavegen":
            if len(self.strides) != len(self.channels) - 1 or any(s < 1 for s in self.strides):
                raise ValueError("a wavegen needs positive strides, one per level transition "
                                 f"(len(channels) - 1 = {len(self.channels) - 1}), got {self.strides}")
            if self.in_channels != 1 or self.out_channels != 1:
                raise ValueError("a wavegen generates 1 channel of audio: in_channels = out_channels = 1")
            if self.sample_rate <= 0:
                raise ValueError("a wavegen needs its sample_rate (e.g. 3200)")
        elif self.strides:
            raise ValueError("strides are for the waveform generator (stage 'wavegen') only")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation {self.representation!r} is not one of {', '.join(REPRESENTATIONS)}")
        if (self.stage == "spectral") != (self.representation == "fine"):
            raise ValueError("the spectral cascader, and only it, works on the FINE representation")
        if self.side not in SIDE_MODES or (self.side != "absolute" and self.stage != "spectral"):
            raise ValueError(f"side {self.side!r}: one of {', '.join(SIDE_MODES)}, and 'relative' on the spectral stage only")
        if self.representation == "fine":
            want = (2 * FINE.n_mels + COARSE.n_bins, 2 * FINE.n_mels)
            if (self.in_channels, self.out_channels) != want:
                raise ValueError(f"a spectral cascader takes FINE mid + side with the COARSE conditioning "
                                 f"(in {want[0]}) and makes FINE mid + side (out {want[1]}), got "
                                 f"{self.in_channels}/{self.out_channels}")
        if self.representation == "coarse":
            rows = COARSE.n_bins + self.side_bands
            if self.stage != "generator" or self.in_channels != rows or self.out_channels != rows:
                raise ValueError(f"a coarse generator has in_channels = out_channels = {rows} (the COARSE "
                                 f"mel's bins + {self.side_bands} side bands), got {self.in_channels}/{self.out_channels}")
        if not 0 <= self.side_bands <= FINE.n_mels or (self.side_bands and self.representation != "coarse"):
            raise ValueError(f"side_bands {self.side_bands}: 0..{FINE.n_mels}, on a coarse generator only")
        if self.side_x0 and not self.side_bands:
            raise ValueError("side_x0 needs side bands (side_bands > 0)")
        if self.side_mean or self.side_sd:
            if not self.side_x0 or len(self.side_mean) != self.side_bands or len(self.side_sd) != self.side_bands:
                raise ValueError(f"side_mean and side_sd precondition a side_x0 output: one value per side band "
                                 f"({self.side_bands}) each, got {len(self.side_mean)} and {len(self.side_sd)}")
            if not all(d > 0 for d in self.side_sd):
                raise ValueError(f"side_sd {self.side_sd}: every band's sd must be above 0")
        for a in self.attn_levels:
            if not 0 <= a < len(self.channels):
                raise ValueError(f"attn level {a} outside 0..{len(self.channels) - 1}")
        for a in self.attn_levels:
            c = self.channels[a]
            if c % self.head_dim:
                raise ValueError(f"channels {c} not a multiple of head_dim {self.head_dim}")

    @property
    def wave(self) -> bool:
        return self.stage == "wavegen"

    @property
    def level_strides(self) -> tuple[int, ...]:
        return self.strides if self.wave else (2,) * (len(self.channels) - 1)

    @property
    def frame_multiple(self) -> int:
        """Grid frames must be a multiple of this (the wavegen's bottleneck runs at the grid rate)."""
        return 1 if self.wave else 2 ** (len(self.channels) - 1)

    @property
    def hop(self) -> int:
        """Output samples (or mel frames) per grid frame."""
        return math.prod(self.strides) if self.wave else 1

    @property
    def mel_norm(self) -> dict[str, float]:
        return {"mean": self.mel_mean, "scale": self.mel_scale}


@dataclass
class VocoderConfig:
    """Waveform U-Net cascader (normalised log-mel -> 16 kHz audio v-prediction).

    The same class is the waveform route's audio-conditioned cascaders: ``stage="cascader"``
    (3.2 kHz -> 16 kHz) and ``stage="superres"`` (16 kHz -> 48 kHz). Those take, instead of the
    mel, the lower-rate audio upsampled to ``sample_rate`` (bridge.resample), noise-augmented to
    diffusion time ``aug`` (0 = clean), stacked onto the noisy input as a second channel.
    """

    stage: str = "vocoder"
    channels: tuple[int, ...] = (16, 32, 64, 128, 192)
    strides: tuple[int, ...] = (4, 4, 4, 5)  # product = mel hop (320)
    blocks_per_level: int = 1
    kernel_size: int = 5
    groups: int = 8
    emb_dim: int = 128
    n_mels: int = 80
    dropout: float = 0.0
    mel_mean: float = -4.5
    mel_scale: float = 7.0
    audio_scale: float = 3.0  # the model sees audio * audio_scale; the runtime divides it out
    snippet_seconds: float = 1.0
    # audio-conditioned cascaders ("cascader", "superres"): output rate, conditioning rate, and the
    # largest noise-augmentation time drawn for the conditioning signal in training
    sample_rate: int = 16000
    cond_rate: int = 0
    aug_max: float = 0.0

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.strides = tuple(int(s) for s in self.strides)
        validate_common(self.channels, self.groups, self.kernel_size, self.blocks_per_level)
        if self.stage not in AUDIO_CASCADERS + ("vocoder",):
            raise ValueError(f"VocoderConfig.stage must be 'vocoder', 'cascader' or 'superres', got {self.stage!r}")
        if self.audio_cond:
            if self.cond_rate <= 0 or self.sample_rate % self.cond_rate:
                raise ValueError(f"a {self.stage} needs cond_rate dividing sample_rate {self.sample_rate}, "
                                 f"got {self.cond_rate}")
            if not 0.0 <= self.aug_max <= 1.0:
                raise ValueError(f"aug_max must be in [0, 1], got {self.aug_max}")
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError("strides needs one entry per level transition (len(channels) - 1)")
        if any(s < 1 for s in self.strides):
            raise ValueError(f"strides must be positive, got {self.strides}")

    @property
    def hop(self) -> int:
        return math.prod(self.strides)

    @property
    def audio_cond(self) -> bool:
        return self.stage in AUDIO_CASCADERS

    @property
    def up_factor(self) -> int:
        """sample_rate / cond_rate (audio-conditioned cascaders)."""
        return self.sample_rate // self.cond_rate if self.audio_cond else 1

    @property
    def mel_norm(self) -> dict[str, float]:
        return {"mean": self.mel_mean, "scale": self.mel_scale}


AUDIO_CASCADERS = ("cascader", "superres")


def validate_common(channels: tuple[int, ...], groups: int, kernel: int, blocks: int) -> None:
    if len(channels) < 1 or any(c < 1 for c in channels):
        raise ValueError(f"channels must be positive, got {channels}")
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel}")
    if blocks < 1:
        raise ValueError("blocks_per_level must be at least 1")
    for c in channels:
        if c % _groups(c, groups):
            raise ValueError(f"channels {c} incompatible with groups {groups}")


def _groups(c: int, groups: int) -> int:
    g = min(groups, c)
    while c % g:
        g -= 1
    return g


StageConfig = UNetConfig | VocoderConfig
STAGE_CONFIGS: dict[str, type] = {"generator": UNetConfig, "vocoder": VocoderConfig, "wavegen": UNetConfig,
                                  "spectral": UNetConfig,
                                  "cascader": VocoderConfig, "superres": VocoderConfig}


def config_from_dict(d: dict) -> StageConfig:
    """A stage config from its dict (as saved in checkpoints), by its 'stage' field."""
    d = dict(d)
    stage = d.get("stage")
    cls = STAGE_CONFIGS.get(stage)  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown stage {stage!r}: expected one of {', '.join(STAGE_CONFIGS)}")
    known = set(cls.__dataclass_fields__)
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {stage} config fields: {sorted(unknown)}")
    return cls(**d)


def tiny_generator_config() -> UNetConfig:
    """A generator of a few thousand parameters (tests, exporter fixtures)."""
    return UNetConfig(channels=(8, 16), attn_levels=(1,), head_dim=8, groups=4, emb_dim=8,
                      ctx_dim=8, kernel_size=3)


def tiny_vocoder_config() -> VocoderConfig:
    """A vocoder of a few thousand parameters (tests, exporter fixtures); hop still 320."""
    return VocoderConfig(channels=(4, 8, 8, 16, 16), strides=(4, 4, 4, 5), groups=4, emb_dim=16,
                         kernel_size=3)


def tiny_wavegen_config() -> UNetConfig:
    """A 3.2 kHz waveform generator of a few thousand parameters; strides 4, 4, 4 (64 samples per
    50 Hz grid frame), attention only at the bottleneck."""
    return UNetConfig(stage="wavegen", in_channels=1, out_channels=1, channels=(4, 8, 8, 16),
                      strides=(4, 4, 4), attn_levels=(3,), head_dim=8, groups=4, emb_dim=8, ctx_dim=8,
                      kernel_size=3, audio_scale=3.0, sample_rate=3200)


def tiny_cascader_config() -> VocoderConfig:
    """A 3.2 kHz -> 16 kHz cascader of a few thousand parameters (hop 320 at 16 kHz)."""
    return VocoderConfig(stage="cascader", channels=(4, 8, 8, 16, 16), strides=(4, 4, 4, 5), groups=4,
                         emb_dim=16, kernel_size=3, sample_rate=16000, cond_rate=3200, aug_max=0.3)


def tiny_superres_config() -> VocoderConfig:
    """A 16 kHz -> 48 kHz cascader of a few thousand parameters (hop 960 at 48 kHz)."""
    return VocoderConfig(stage="superres", channels=(4, 8, 8, 16, 16), strides=(4, 4, 6, 10), groups=4,
                         emb_dim=16, kernel_size=3, sample_rate=48000, cond_rate=16000, aug_max=0.3,
                         snippet_seconds=0.5)


def tiny_coarse_generator_config() -> UNetConfig:
    """The fine route's generator (COARSE mel in and out) at a few thousand parameters."""
    return UNetConfig(representation="coarse", in_channels=COARSE.n_bins, out_channels=COARSE.n_bins,
                      channels=(8, 16), attn_levels=(1,), head_dim=8, groups=4, emb_dim=8, ctx_dim=8,
                      kernel_size=3, mel_mean=-1.5, mel_scale=3.4)


def tiny_spectral_config() -> UNetConfig:
    """The fine route's spectral cascader (FINE mid + side from COARSE) at a few thousand parameters."""
    return UNetConfig(stage="spectral", representation="fine", in_channels=2 * FINE.n_mels + COARSE.n_bins,
                      out_channels=2 * FINE.n_mels, channels=(8, 16), attn_levels=(1,), head_dim=8, groups=4,
                      emb_dim=8, ctx_dim=8, kernel_size=3, mel_mean=-1.5, mel_scale=3.4, cond_aug_max=0.3)


TINY_CONFIGS = {"generator": tiny_generator_config, "vocoder": tiny_vocoder_config,
                "wavegen": tiny_wavegen_config, "cascader": tiny_cascader_config,
                "superres": tiny_superres_config, "spectral": tiny_spectral_config}
