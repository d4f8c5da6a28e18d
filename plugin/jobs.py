"""What the panel knows about requests, jobs and clips: plain dataclasses, no Qt.

A `GenerateRequest` is what the form holds; `to_osc_args()` turns it into the arguments of
`/n2m/generate` (the prompt, then key=value strings). An `EditRequest` asks for an edit of a clip
(`/n2m/extend`, `/n2m/inpaint`, `/n2m/vary`): its library id, or the path of a file dropped on the
panel. Both name their `address` and a `title` for the queue. A `Job` follows one daemon job
through its progress events; `seconds_left` estimates the time left from the job's own rate (the
daemon's progress fraction covers the whole job).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from n2m.bridge import protocol as P
from n2m.bridge.controls import Controls
from n2m.bridge.edit import edit_spec
from n2m.bridge.oscargs import EDIT_PARAMS
from n2m.bridge.request import MAX_VARIATIONS, RequestError, from_options, whole

DEFAULT_TAKES = 2  # takes per Generate until the producer changes it
ACTIVE_STATES = frozenset({"sending", "queued", "running"})
ETA_MIN_FRACTION = 0.02  # below this the rate says too little to estimate from


@dataclass(frozen=True)
class QualityPreset:
    name: str
    steps: int | None  # None: the model's own default

    @property
    def label(self) -> str:
        return f"{self.name} · {self.steps} steps" if self.steps else f"{self.name} · model default"


QUALITY_PRESETS: tuple[QualityPreset, ...] = (
    QualityPreset("Draft", 8),
    QualityPreset("Standard", None),
    QualityPreset("High", 50),
)


@dataclass(frozen=True)
class GenerateRequest:
    """One press of Generate. None = unspecified (the daemon or the prompt text decides)."""

    prompt: str
    bpm: float | None = None
    key: str | None = None
    mode: str | None = None
    meter: str | None = None
    bars: int | None = None
    seconds: float | None = None
    seed: int | None = None
    variations: int = 1
    steps: int | None = None
    extra: tuple[tuple[str, str], ...] = ()  # settings passed through (samplerate, format, ...)
    loop: bool = False  # a loop of whole bars, sampled periodic by the model

    address = P.GENERATE

    @property
    def title(self) -> str:
        return self.prompt

    def controls(self) -> Controls:
        return Controls(self.bpm, self.key, self.mode, self.meter, self.bars, self.seconds)

    def check(self) -> Controls:
        """The controls the daemon will use (prompt text merged with the form), or RequestError:
        the daemon's own validation (bridge.request), run before anything is sent."""
        if not self.prompt.strip():
            raise RequestError("type a prompt first")
        opts = {**self.controls().as_dict(), "prompt": self.prompt, "seed": self.seed,
                "variations": self.variations, "steps": self.steps, "loop": self.loop or None, **dict(self.extra)}
        return from_options(opts).controls

    def to_osc_args(self, tag: str = "") -> list[str]:
        """The prompt, then key=value strings; `tag` names the request in the daemon's /n2m/job."""
        args = [self.prompt.strip()]
        c = self.controls()
        for name in ("bpm", "key", "mode", "meter", "bars", "seconds"):
            v = getattr(c, name)
            if v is not None:
                args.append(f"{name}={_fmt(v)}")
        if self.seed is not None:
            args.append(f"seed={self.seed}")
        if self.variations != 1:
            args.append(f"variations={self.variations}")
        if self.steps is not None:
            args.append(f"steps={self.steps}")
        if self.loop:
            args.append("loop=1")
        args += [f"{k}={v}" for k, v in self.extra]
        if tag:
            args.append(f"tag={tag}")
        return args

    def varied(self, seed: int) -> GenerateRequest:
        """Same prompt and controls, another seed, one clip."""
        return replace(self, seed=seed, variations=1)


@dataclass(frozen=True)
class EditRequest:
    """An edit of a clip: "extend" by `value` bars, "inpaint" bars `value` ("A-B"), or "vary" at
    strength `value` (`variations` takes). `source` is the clip's library id or a file's path."""

    kind: str
    source: int | str
    value: int | str | float
    name: str = ""  # the source as the panel shows it
    variations: int = 1
    prompt: str = ""  # "" = the source's own

    @property
    def address(self) -> str:
        return P.EDIT_ADDRESSES[self.kind]

    @property
    def title(self) -> str:
        what = {"extend": f"Extend +{self.value} bars", "inpaint": f"Replace bars {self.value}",
                "vary": f"Vary {_fmt(self.value)}" + (f" × {self.variations}" if self.variations != 1 else "")}
        return f"{what[self.kind]} · {self.name or self.source}"

    def check(self) -> None:
        """RequestError unless the daemon would take the edit's parameter and takes (the daemon's
        own checks, bridge.edit); the source is the daemon's to check."""
        if self.kind not in EDIT_PARAMS:
            raise RequestError(f"unknown edit {self.kind!r}")
        edit_spec(self.kind, self.value, EDIT_PARAMS[self.kind][0])
        whole(self.variations, "variations", 1, MAX_VARIATIONS)

    def to_osc_args(self, tag: str = "") -> list:
        """The source (an int id or a path), the prompt if any, then key=value strings."""
        args: list = [self.source] + ([self.prompt] if self.prompt.strip() else [])
        args.append(f"{EDIT_PARAMS[self.kind][0]}={_fmt(self.value)}")
        if self.kind == "vary" and self.variations != 1:
            args.append(f"variations={self.variations}")
        return args + ([f"tag={tag}"] if tag else [])


def _fmt(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


@dataclass
class Job:
    """One request as the panel follows it: sent, queued, running (stage and fraction), ended."""

    request: GenerateRequest | EditRequest
    id: str = ""  # the daemon's id, once /n2m/job arrived
    state: str = "sending"
    stage: str = ""
    fraction: float = 0.0  # of the whole job, 0-1
    message: str = ""
    clips: list[str] = field(default_factory=list)
    tag: str = ""  # the panel's name for the request, echoed by /n2m/job
    run_started: float = 0.0  # the first progress event of this run

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def on_progress(self, stage: str, fraction: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        fraction = min(1.0, max(0.0, float(fraction)))
        if not self.run_started or fraction < self.fraction - 1e-6:
            self.run_started = now  # the first run, or a restarted daemon running the job again
        self.state, self.stage, self.fraction = "running", stage, fraction

    def finish(self, state: str, message: str = "") -> None:
        self.state, self.message = state, message or self.message
        if state == "finished":
            self.fraction = 1.0


def seconds_left(job: Job, now: float | None = None) -> float | None:
    """Time left for a running job at its own rate so far; None while too little is known."""
    if job.state != "running" or job.fraction < ETA_MIN_FRACTION:
        return None
    now = time.monotonic() if now is None else now
    if now <= job.run_started:
        return None
    return (now - job.run_started) * (1.0 - job.fraction) / job.fraction


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    return f"~{s // 60}:{s % 60:02d} left" if s >= 60 else f"~{s} s left"


EDITED = {"extend": "extended", "inpaint": "bars replaced", "vary": "varied"}


@dataclass
class Clip:
    """One finished clip, as the results list shows it."""

    path: str
    prompt: str = ""
    seed: int | None = None
    bpm: float | None = None
    bars: int | None = None
    samplerate: int = 0
    seconds: float = 0.0
    job_id: str = ""
    favourite: bool = False
    request: GenerateRequest | None = None
    created: float = field(default_factory=time.time)
    id: int | None = None  # the daemon library's id (what an edit sends); None: not known
    edit: str = ""  # the edit that made it ("extend", "inpaint", "vary"); "" for a generated clip

    @property
    def name(self) -> str:
        return Path(self.path).name

    def meta_line(self) -> str:
        parts = [EDITED[self.edit]] if self.edit in EDITED else []
        if self.bpm:
            parts.append(f"{_fmt(round(self.bpm, 1))} bpm")
        if self.bars:
            parts.append(f"{self.bars} bars")
        if self.seconds:
            parts.append(f"{self.seconds:.1f} s")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        if self.samplerate:
            parts.append(f"{self.samplerate / 1000:g} kHz")
        return " · ".join(parts)


def read_sidecar(path: str | Path) -> dict:
    """The JSON sidecar the daemon writes beside a clip (`x.wav` -> `x.json` or `x.wav.json`)."""
    p = Path(path)
    for cand in (p.with_suffix(".json"), p.with_name(p.name + ".json")):
        try:
            data = json.loads(cand.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def sidecar_value(side: dict, *names: str) -> object:
    """First of `names` found at the top level of the sidecar or in its 'controls'/'request'."""
    for scope in (side, side.get("controls") or {}, side.get("request") or {}):
        if not isinstance(scope, dict):
            continue
        for n in names:
            if scope.get(n) is not None:
                return scope[n]
    return None
