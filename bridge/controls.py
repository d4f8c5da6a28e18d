"""Musical controls: their vocabularies, validation, and parsing them out of prompt text.

Defined once here and used by the corpus (labels and captions), the models (embedding indices),
the engine, the daemon and the panel, so that the vocabularies cannot drift.

A control that is not given is *unspecified*, a state the models are trained on (each control is
dropped independently in training), never a default value. Index 0 of every vocabulary means
unspecified.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace

# Pitch classes, spelled as producers write them. Index in this tuple = pitch class (C = 0).
TONICS: tuple[str, ...] = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES: tuple[str, ...] = ("major", "minor", "dorian", "mixolydian")
METERS: tuple[str, ...] = ("4/4", "3/4", "6/8")

BPM_MIN, BPM_MAX = 40.0, 240.0  # what a request may ask for
TRAIN_BPM_MIN, TRAIN_BPM_MAX = 60.0, 180.0  # what the corpus covers
SECONDS_MIN, SECONDS_MAX = 2.0, 30.0
BARS_MAX = 64
BEATS_PER_BAR = {"4/4": 4.0, "3/4": 3.0, "6/8": 3.0}  # in quarter notes: 6/8 = 6 eighths = 3 quarters

_ENHARMONIC = {
    "C": 0, "B#": 0, "C#": 1, "DB": 1, "D": 2, "D#": 3, "EB": 3, "E": 4, "FB": 4, "E#": 5, "F": 5,
    "F#": 6, "GB": 6, "G": 7, "G#": 8, "AB": 8, "A": 9, "A#": 10, "BB": 10, "B": 11, "CB": 11,
}
_MODE_WORDS = {
    "major": "major", "maj": "major", "ionian": "major",
    "minor": "minor", "min": "minor", "m": "minor", "aeolian": "minor",
    "dorian": "dorian", "mixolydian": "mixolydian",
}


class ControlError(ValueError):
    """A control value that cannot be honoured; the message says why and what is allowed."""


def tonic_index(name: str) -> int:
    """Pitch class of a tonic name ("F#", "Gb", "bb", "C♯")."""
    key = name.strip().replace("♯", "#").replace("♭", "b")
    if not key:
        raise ControlError("empty key")
    norm = key[0].upper() + key[1:].upper().replace("SHARP", "#").replace("FLAT", "B").replace(" ", "")
    if norm not in _ENHARMONIC:
        raise ControlError(f"unknown key {name!r}: use a tonic such as C, F#, Bb")
    return _ENHARMONIC[norm]


def normalize_key(name: str) -> str:
    return TONICS[tonic_index(name)]


def normalize_mode(name: str) -> str:
    m = _MODE_WORDS.get(name.strip().lower())
    if m is None:
        raise ControlError(f"unknown mode {name!r}: one of {', '.join(MODES)}")
    return m


def normalize_meter(name: str) -> str:
    m = name.strip().replace(" ", "")
    if m not in METERS:
        raise ControlError(f"unsupported meter {name!r}: one of {', '.join(METERS)}")
    return m


def relative_tonic(tonic: int, mode: str) -> int:
    """The relative major/minor's tonic (A minor <-> C major); other modes map to their parent major."""
    offset = {"major": 9, "minor": 3, "dorian": -2, "mixolydian": -7}[mode]
    return (tonic + offset) % 12


@dataclass(frozen=True)
class Controls:
    """Explicit musical controls of one request. None = unspecified."""

    bpm: float | None = None
    key: str | None = None  # tonic, one of TONICS
    mode: str | None = None  # one of MODES
    meter: str | None = None  # one of METERS
    bars: int | None = None
    seconds: float | None = None

    def validated(self) -> Controls:
        """Normalised copy, or ControlError with the reason."""
        c = self
        if c.bpm is not None:
            if not isinstance(c.bpm, int | float) or not math.isfinite(c.bpm):
                raise ControlError(f"bpm must be a number, got {c.bpm!r}")
            if not BPM_MIN <= c.bpm <= BPM_MAX:
                raise ControlError(f"bpm {c.bpm:g} is out of range {BPM_MIN:g}-{BPM_MAX:g}")
            c = replace(c, bpm=float(c.bpm))
        if c.key is not None:
            c = replace(c, key=normalize_key(c.key))
        if c.mode is not None:
            c = replace(c, mode=normalize_mode(c.mode))
        if c.meter is not None:
            c = replace(c, meter=normalize_meter(c.meter))
        if c.bars is not None and c.seconds is not None:
            raise ControlError("give bars or seconds, not both")
        if c.bars is not None and (
            isinstance(c.bars, bool) or not isinstance(c.bars, int) or not 1 <= c.bars <= BARS_MAX
        ):
            raise ControlError(f"bars must be a whole number from 1 to {BARS_MAX}, got {c.bars!r}")
        if c.seconds is not None:
            if not isinstance(c.seconds, int | float) or not math.isfinite(c.seconds):
                raise ControlError(f"seconds must be a number, got {c.seconds!r}")
            if not SECONDS_MIN <= c.seconds <= SECONDS_MAX:
                raise ControlError(
                    f"duration {c.seconds:g} s is out of range {SECONDS_MIN:g}-{SECONDS_MAX:g} s"
                )
            c = replace(c, seconds=float(c.seconds))
        if c.bars is not None:
            dur = c.bars_duration()
            if dur is not None and not SECONDS_MIN <= dur <= SECONDS_MAX:
                raise ControlError(
                    f"{c.bars} bars at {c.bpm:g} bpm in {c.meter or '4/4'} last {dur:.1f} s, "
                    f"outside {SECONDS_MIN:g}-{SECONDS_MAX:g} s: ask for fewer bars or a faster tempo"
                )
        return c

    def bars_duration(self) -> float | None:
        if self.bars is None or self.bpm is None:
            return None
        return self.bars * BEATS_PER_BAR[self.meter or "4/4"] * 60.0 / self.bpm

    def duration(self, default_seconds: float = 10.0) -> float:
        """Seconds to generate: bars at the tempo, else seconds, else the default."""
        if self.seconds is not None:
            return self.seconds
        d = self.bars_duration()
        if d is not None:
            return d
        if self.bars is not None:  # bars without a tempo: assume a mid tempo for the length
            return min(SECONDS_MAX, self.bars * BEATS_PER_BAR[self.meter or "4/4"] * 60.0 / 120.0)
        return default_seconds

    def indices(self) -> dict[str, int]:
        """Embedding indices for the models: 0 = unspecified, else 1 + vocabulary position."""
        return {
            "key": 0 if self.key is None else 1 + tonic_index(self.key),
            "mode": 0 if self.mode is None else 1 + MODES.index(self.mode),
            "meter": 0 if self.meter is None else 1 + METERS.index(self.meter),
        }

    def merged(self, other: Controls) -> Controls:
        """Fields of `other` where given, else this one's."""
        return Controls(**{k: (v if v is not None else getattr(self, k)) for k, v in asdict(other).items()})

    def as_dict(self) -> dict:
        return asdict(self)


_NOTE = r"([A-Ga-g])\s*(#|♯|b|♭|-?sharp|-?flat)?"
_BPM_RE = re.compile(r"(\d{2,3}(?:\.\d+)?)\s*(?:bpm|beats per minute|b\.p\.m\.)", re.I)
_BPM_RE2 = re.compile(r"(?:tempo|bpm)\s*(?:of|=|:)?\s*(\d{2,3}(?:\.\d+)?)", re.I)
_KEY_RE = re.compile(
    r"(?:\bin\s+|\bkey\s*(?:of|:|=)?\s*|^|[\s,(])" + _NOTE +
    r"\s*(major|minor|maj|min|dorian|mixolydian|ionian|aeolian|m)\b(?!\s*(?:bars?|measures?))",
    re.I,
)
_METER_RE = re.compile(r"\b(4/4|3/4|6/8)\b|\b(waltz time|common time)\b", re.I)
_BARS_RE = re.compile(r"\b(\d{1,3})\s*(?:-\s*)?(?:bars?|measures?)\b", re.I)
_SECONDS_RE = re.compile(r"\b(\d{1,3}(?:\.\d+)?)\s*(?:s|sec|secs|seconds?)\b", re.I)
_WORD_NUM = {"one": 1, "two": 2, "four": 4, "eight": 8, "twelve": 12, "sixteen": 16, "thirty-two": 32}


def parse_controls(text: str) -> Controls:
    """Controls written in the prompt ("92 bpm", "in F# minor", "3/4", "8 bars", "20 seconds").

    Anything not found stays unspecified. Values are not range-checked here: call .validated().
    """
    bpm = key = mode = meter = bars = seconds = None
    if m := _BPM_RE.search(text) or _BPM_RE2.search(text):
        bpm = float(m.group(1))
    if m := _KEY_RE.search(text):
        letter, acc, mode_word = m.group(1), m.group(2) or "", m.group(3)
        if not (mode_word == "m" and letter.islower()):  # "a m" is too ambiguous; "Am" is fine
            acc_norm = "#" if acc.lower().lstrip("-") in {"#", "♯", "sharp"} else ("b" if acc else "")
            key = normalize_key(letter.upper() + acc_norm)
            mode = normalize_mode(mode_word if mode_word != "M" else "major")
    if m := _METER_RE.search(text):
        meter = m.group(1) or ("3/4" if m.group(2).lower() == "waltz time" else "4/4")
    elif re.search(r"\bwaltz\b", text, re.I):
        meter = "3/4"
    if m := _BARS_RE.search(text):
        bars = int(m.group(1))
    else:
        for word, n in _WORD_NUM.items():
            if re.search(rf"\b{word}\s+(?:bars?|measures?)\b", text, re.I):
                bars = n
                break
    if m := _SECONDS_RE.search(text):
        seconds = float(m.group(1))
    return Controls(bpm=bpm, key=key, mode=mode, meter=meter, bars=bars, seconds=seconds)


def resolve(prompt: str, explicit: Controls | None = None) -> Controls:
    """Controls for a request: parsed from the text, overridden by explicit ones, validated."""
    parsed = parse_controls(prompt)
    if explicit is None:
        return parsed.validated()
    if explicit.bars is not None or explicit.seconds is not None:  # an explicit length wins whole
        parsed = replace(parsed, bars=None, seconds=None)
    return parsed.merged(explicit).validated()
