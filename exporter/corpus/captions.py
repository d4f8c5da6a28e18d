"""Captions from what we composed, varied like Noise2Music's pseudo-labels.

Each clip gets several captions: tag lists and full sentences, with synonyms, with and without
numbers, mentioning genre, tempo, key/mode, meter, instruments, mood and era. Every fact a caption
states is true of the clip's metadata (verify.py checks it with bridge.controls.parse_controls).
"""

from __future__ import annotations

import numpy as np

from . import theory as th
from .compose import ClipPlan
from .styles import DEFS

TEMPO_WORDS = ((0, 76, ("slow", "laid-back", "downtempo", "unhurried")),
               (76, 108, ("mid-tempo", "relaxed", "medium-paced")),
               (108, 140, ("upbeat", "uptempo", "driving")),
               (140, 999, ("fast", "high-tempo", "rapid", "frantic")))
ENERGY_WORDS = ((0.0, 0.4, ("calm", "gentle", "low-energy", "sparse")),
                (0.4, 0.7, ("steady", "moderate", "balanced")),
                (0.7, 1.01, ("high-energy", "punchy", "intense", "busy")))
METER_WORDS = {"4/4": ("4/4", "common time", "four to the bar"), "3/4": ("3/4", "waltz time", "triple meter"),
               "6/8": ("6/8", "compound time", "a lilting 6/8")}


def tempo_word(bpm: float, rng: np.random.Generator) -> str:
    for lo, hi, words in TEMPO_WORDS:
        if lo <= bpm < hi:
            return str(rng.choice(words))
    return "mid-tempo"


def energy_word(e: float, rng: np.random.Generator) -> str:
    for lo, hi, words in ENERGY_WORDS:
        if lo <= e < hi:
            return str(rng.choice(words))
    return "steady"


def bpm_text(bpm: float, rng: np.random.Generator) -> str:
    b = f"{bpm:g}"
    return str(rng.choice([f"{b} bpm", f"{b} BPM", f"{b} beats per minute", f"tempo {b}"]))


def key_text(key: str, mode: str, rng: np.random.Generator) -> str:
    if mode == "minor" and rng.random() < 0.3:
        return f"{key}m" if rng.random() < 0.5 else f"{key} minor"
    if mode == "major" and rng.random() < 0.2:
        return f"{key} maj"
    return f"{key} {mode}"


def instrument_names(plan: ClipPlan, rng: np.random.Generator) -> list[str]:
    names = []
    for role, prog in plan.programs:
        syn = th.FRIENDLY.get(prog, (th.GM_NAMES[prog],))
        n = str(rng.choice(syn))
        if role == "bass" and "bass" not in n and prog not in range(32, 40):
            n = f"{n} bass"
        if n not in names:
            names.append(n)
    if plan.drum_kit is not None and DEFS[plan.style].drums != "none":
        kit = th.kit_name(plan.drum_kit, plan.drum_soundfont)
        special = plan.drum_kit in (25, 48) and plan.drum_soundfont is None
        names.append(kit if special else str(rng.choice([kit, "drums"])))
    return names


def mode_adj(mode: str) -> str:
    return {"major": "major-key", "minor": "minor-key", "dorian": "dorian", "mixolydian": "mixolydian"}[mode]


def captions(plan: ClipPlan, n: int = 6) -> list[str]:
    """n distinct captions of the clip (at least 4), deterministic for the plan."""
    rng = np.random.default_rng([plan.seed, 3])
    st = DEFS[plan.style]
    out: list[str] = []

    def genre() -> str:
        return str(rng.choice(st.words))

    def insts(k: int | None = None) -> str:
        names = instrument_names(plan, rng)
        rng.shuffle(names)
        names = names[: k or len(names)]
        if len(names) == 1:
            return names[0]
        return ", ".join(names[:-1]) + " and " + names[-1]

    dur_bars = f"{plan.bars} bars"
    # 1. tag list with numbers
    tags = [genre(), bpm_text(plan.bpm, rng), key_text(plan.key, plan.mode, rng), plan.mood,
            *instrument_names(plan, rng)[:3], plan.era]
    if plan.meter != "4/4" or rng.random() < 0.3:
        tags.insert(3, plan.meter)
    out.append(", ".join(tags))
    # 2. full sentence with numbers
    out.append(f"A {plan.mood} {genre()} track at {plan.bpm:g} BPM in {plan.key} {plan.mode}, "
               f"featuring {insts()}.")
    # 3. producer-style sentence without numbers
    out.append(f"{tempo_word(plan.bpm, rng).capitalize()} {energy_word(plan.energy, rng)} {genre()} "
               f"with {insts(3)}, {plan.mood} and {mode_adj(plan.mode)}, {plan.era} feel.")
    # 4. short tag list without numbers
    out.append(", ".join([genre(), plan.mood, tempo_word(plan.bpm, rng), *instrument_names(plan, rng)[:2]]))
    # 5. loop description with bars and meter
    out.append(f"{dur_bars} of {genre()} in {str(rng.choice(METER_WORDS[plan.meter]))}, "
               f"{key_text(plan.key, plan.mode, rng)}, {bpm_text(plan.bpm, rng)}, {plan.dynamics} dynamics")
    # 6. descriptive sentence: sections and era
    secs = " into ".join(name for name, _ in plan.sections)
    out.append(f"{plan.era} {genre()} {secs} section, {energy_word(plan.energy, rng)} and {plan.mood}, "
               f"played on {insts()}.")
    seen, uniq = set(), []
    for c in out:
        if c not in seen:
            seen.add(c)
            uniq.append(c)
    return uniq[:n]
