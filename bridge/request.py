"""One request type: what the CLI, the daemon and the panel ask of the engine and the clip pipeline.

    req = from_options({"prompt": "dusty boom-bap, 88 bpm", "variations": "2", "key": "Am"})

Options arrive as the CLI's flags, OSC key=value strings or the panel's form; `from_options` turns
any of them into a validated `Request`, with every limit defined here once. The engine adds only
what depends on the model (its guidance range, samplers, duration range).
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from n2m.bridge.controls import ControlError, Controls, normalize_key, normalize_mode, resolve
from n2m.bridge.pipeline import PipelineError, PipelineOptions

MAX_PROMPT = 1000  # characters
MAX_VARIATIONS = 8
MAX_STEPS = 500
SEED_MAX = 2**32 - 1
CONTROL_KEYS = ("bpm", "key", "mode", "meter", "bars", "seconds")
OUTPUT_KEYS = ("loop", "loop_crossfade", "format", "samplerate", "lufs", "stretch")
OPTION_KEYS = frozenset(("prompt", *CONTROL_KEYS, "seed", "variations", "steps", "guidance", "sampler",
                         "decoder", *OUTPUT_KEYS, "name", "dir", "tag"))
EDITS = ("vary", "extend", "inpaint")  # edits of a clip the producer has (bridge.edit)
_TAG_RE = re.compile(r"[A-Za-z0-9_.:-]{0,64}")
RECORD_VERSION = 1
_KEY_RE = re.compile(r"^\s*([A-Ga-g])\s*(#|♯|b|♭)?\s*(m|min|minor|maj|major|dorian|mixolydian)?\s*$")


class RequestError(ValueError):
    """A request that cannot be honoured; the message is one line saying why and what is allowed."""


def parse_key(value: Any) -> tuple[str, str | None]:
    """'F#m' -> ('F#', 'minor'); 'Bb major' -> ('Bb', 'major'); 'C' -> ('C', None)."""
    m = _KEY_RE.match(str(value))
    if not m:
        raise RequestError(f"key {value!r} not understood (unknown key): write e.g. C, F#m, Bb major, D dorian")
    tonic = m.group(1).upper() + {"♯": "#", "♭": "b"}.get(m.group(2) or "", m.group(2) or "")
    mode = {"m": "minor", "min": "minor", "maj": "major"}.get(m.group(3) or "", m.group(3))
    try:
        return normalize_key(tonic), (normalize_mode(mode) if mode else None)
    except ControlError as exc:
        raise RequestError(str(exc)) from None


def whole(value: Any, what: str, lo: int | None = None, hi: int | None = None) -> int:
    """A whole number from an int, an integral float or a numeric string, within [lo, hi]."""
    if isinstance(value, bool):
        raise RequestError(f"{what} must be a whole number, got {value!r}")
    if isinstance(value, int):
        v = value
    elif isinstance(value, float) and value.is_integer() or isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,20}\s*", value) or type(value).__name__.startswith(("int", "uint")) and hasattr(value, "item"):
        v = int(value)
    else:
        raise RequestError(f"{what} must be a whole number, got {value!r}")
    _in_range(v, what, lo, hi, "a whole number")
    return v


def number(value: Any, what: str, lo: float | None = None, hi: float | None = None) -> float:
    """A finite number from a number or a numeric string, within [lo, hi]."""
    if isinstance(value, bool):
        raise RequestError(f"{what} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise RequestError(f"{what} must be a number, got {value!r}")
    _in_range(v, what, lo, hi, "a number")
    return v


def _in_range(v: float, what: str, lo: float | None, hi: float | None, kind: str) -> None:
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise RequestError(f"{what} {v:g} is out of range: {what} must be {kind} from {lo:g} to {hi:g}")


def flag(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in {"1", "true", "yes", "on"}:
        return True
    if s in {"0", "false", "no", "off"}:
        return False
    raise RequestError(f"{what} must be 0/1, true/false, got {value!r}")


@dataclass(frozen=True)
class Request:
    """A validated request. None = the model's own default (steps, guidance, sampler, decoder)."""

    prompt: str
    controls: Controls
    seed: int
    steps: int | None = None
    guidance: float | None = None
    variations: int = 1
    sampler: str | None = None
    decoder: str | None = None
    output: PipelineOptions = field(default_factory=PipelineOptions)
    name: str | None = None  # file name stem instead of the prompt's slug
    folder: str | None = None  # a sub-folder of the clip folder (checked by whoever writes there)
    tag: str = ""  # the sender's own name for the request, echoed in /n2m/job

    def validated(self) -> Request:
        """This request checked against the limits above, or RequestError."""
        if not isinstance(self.prompt, str):  # its length is capped where it comes in (from_options)
            raise RequestError("prompt must be text")
        whole(self.variations, "variations", 1, MAX_VARIATIONS)
        whole(self.seed, "seed", 0, SEED_MAX)
        if self.steps is not None:
            whole(self.steps, "steps", 1, MAX_STEPS)
        if not isinstance(self.tag, str) or not _TAG_RE.fullmatch(self.tag):
            raise RequestError(f"tag {self.tag!r} refused: up to 64 letters, digits, _ . : -")
        if self.guidance is not None:  # its range is the model's (the engine checks it)
            number(self.guidance, "guidance")
        try:
            controls = self.controls.validated()
            output = self.output.validated()
        except (ControlError, PipelineError) as exc:
            raise RequestError(str(exc)) from None
        return replace(self, controls=controls, output=output)

    def record(self) -> dict[str, Any]:
        """JSON-able form, for keeping a request across a daemon restart."""
        d = asdict(self)
        d["version"] = RECORD_VERSION
        return d

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Request:
        if rec.get("version") != RECORD_VERSION:
            raise RequestError(f"request record version {rec.get('version')!r}, not {RECORD_VERSION}")
        fields = {k: v for k, v in rec.items() if k != "version"}
        fields["controls"] = Controls(**fields["controls"])
        fields["output"] = PipelineOptions(**fields["output"])
        return cls(**fields).validated()


def from_options(options: Mapping[str, Any], *, song: Controls | None = None,
                 output: PipelineOptions | None = None) -> Request:
    """A validated request from named options (values may be strings).

    Controls not given are parsed from the prompt, then taken from `song` (the DAW's tempo and
    meter); `output` holds the output defaults (rate, format, loudness) the options override."""
    opts = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(opts) - OPTION_KEYS)
    if unknown:
        raise RequestError(f"unknown option {unknown[0]!r}: one of {', '.join(sorted(OPTION_KEYS))}")
    prompt = opts.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise RequestError(f"the prompt must be a string, got {prompt!r}")
    if not prompt or not prompt.strip() or len(prompt.strip()) > MAX_PROMPT or "\0" in prompt:
        raise RequestError(f"the prompt must be 1-{MAX_PROMPT} characters of text")
    prompt = prompt.strip()
    controls = _controls(prompt, opts, song)
    out = output or PipelineOptions()
    out = replace(
        out, bpm=controls.bpm, bars=controls.bars, meter=controls.meter,
        loop=flag(opts["loop"], "loop") if "loop" in opts else out.loop,
        loop_crossfade=flag(opts["loop_crossfade"], "loop_crossfade") if "loop_crossfade" in opts
        else out.loop_crossfade,
        sample_rate=whole(opts["samplerate"], "samplerate") if "samplerate" in opts else out.sample_rate,
        format=str(opts.get("format", out.format)),
        target_lufs=number(opts["lufs"], "lufs") if "lufs" in opts else out.target_lufs,
        stretch=flag(opts["stretch"], "stretch") if "stretch" in opts else out.stretch)
    return Request(
        prompt=prompt, controls=controls,
        seed=whole(opts["seed"], "seed", 0, SEED_MAX) if "seed" in opts else secrets.randbelow(2**31),
        steps=whole(opts["steps"], "steps", 1, MAX_STEPS) if "steps" in opts else None,
        guidance=number(opts["guidance"], "guidance") if "guidance" in opts else None,
        variations=whole(opts.get("variations", 1), "variations", 1, MAX_VARIATIONS),
        sampler=str(opts["sampler"]) if "sampler" in opts else None,
        decoder=str(opts["decoder"]) if "decoder" in opts else None,
        output=out, name=str(opts["name"]) if "name" in opts else None,
        folder=str(opts["dir"]) if "dir" in opts else None, tag=str(opts.get("tag", "")),
    ).validated()


def _controls(prompt: str, opts: Mapping[str, Any], song: Controls | None) -> Controls:
    key = mode = None
    if "key" in opts:
        key, mode = parse_key(opts["key"])
    if "mode" in opts:
        if mode is not None:
            raise RequestError(f"key {opts['key']!r} already names a mode; drop mode {opts['mode']!r}")
        mode = str(opts["mode"])
    try:
        explicit = Controls(
            bpm=number(opts["bpm"], "bpm") if "bpm" in opts else None, key=key, mode=mode,
            meter=str(opts["meter"]) if "meter" in opts else None,
            bars=whole(opts["bars"], "bars") if "bars" in opts else None,
            seconds=number(opts["seconds"], "seconds") if "seconds" in opts else None)
        controls = resolve(prompt, explicit)
        if song is not None:  # the DAW's tempo and meter where the request and prompt give none
            controls = replace(controls, bpm=controls.bpm if controls.bpm is not None else song.bpm,
                               meter=controls.meter or song.meter).validated()
    except ControlError as exc:
        raise RequestError(str(exc)) from None
    return controls
