"""Planning the corpus: which clips, in which style, at which controls, from one seed.

Planning is cheap (no audio) and fully deterministic: clip i of a corpus depends only on the
corpus seed and i, so shards can be built in any order, by any worker, and resumed.
"""

from __future__ import annotations

import hashlib

import numpy as np

from n2m.bridge.controls import BEATS_PER_BAR, TONICS, TRAIN_BPM_MAX, TRAIN_BPM_MIN

from .compose import ClipPlan
from .styles import DEFS, MOODS_MAJOR, MOODS_MINOR, STYLES
from .synth import SOUNDFONTS, SoundFont

MIN_SECONDS, MAX_SECONDS = 8.0, 30.0
CHIP_FONT_SHARE = 0.5  # chip styles play their own (OPL3) font this often, when it is installed
ACOUSTIC_KIT_STYLES = ("rock", "metal", "funk", "swing_jazz", "bossa_nova", "reggae", "waltz", "folk")
ACOUSTIC_KIT_SHARE = 0.5  # those styles' drums come from a multi-sampled acoustic kit this often
SPLIT_PERCENT = {"train": 90, "val": 5, "test": 5}
SCORE_STYLES = ("chorale", "folk")

_TEMPLATES: dict[int, tuple[tuple[tuple[str, int], ...], ...]] = {
    4: ((("verse", 4),), (("chorus", 4),), (("intro", 1), ("verse", 3)), (("verse", 3), ("fill", 1))),
    8: ((("intro", 2), ("verse", 6)), (("verse", 8),), (("verse", 4), ("chorus", 4)), (("chorus", 8),),
        (("breakdown", 4), ("chorus", 4))),
    12: ((("intro", 4), ("verse", 8)), (("verse", 8), ("chorus", 4)), (("verse", 4), ("chorus", 8))),
    16: ((("intro", 4), ("verse", 8), ("chorus", 4)), (("verse", 8), ("chorus", 8)),
         (("intro", 8), ("verse", 8))),
}


def split_of(composition_id: str) -> str:
    h = int(hashlib.sha1(composition_id.encode()).hexdigest()[:8], 16) % 100
    if h < SPLIT_PERCENT["train"]:
        return "train"
    return "val" if h < SPLIT_PERCENT["train"] + SPLIT_PERCENT["val"] else "test"


def _weighted(rng: np.random.Generator, table: dict[str, float]) -> str:
    names = list(table)
    w = np.array([table[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def _bars_for(rng: np.random.Generator, bpm: float, meter: str) -> int:
    bar_s = BEATS_PER_BAR[meter] * 60.0 / bpm
    ok = [b for b in (4, 8, 12, 16) if MIN_SECONDS <= b * bar_s <= MAX_SECONDS]
    if not ok:  # very fast 3/4: more bars
        ok = [b for b in (16, 24, 32) if b * bar_s <= MAX_SECONDS] or [4]
    w = np.array([2.0 if b == 8 else 1.0 for b in ok])
    return int(ok[int(rng.choice(len(ok), p=w / w.sum()))])


def _sections(rng: np.random.Generator, bars: int, second: bool) -> tuple[tuple[str, int], ...]:
    t = _TEMPLATES.get(bars)
    if t is None:
        half = bars // 2
        return (("verse", half), ("chorus", bars - half))
    if second:  # the second clip of a composition is its chorus
        chorus = [x for x in t if any(n == "chorus" for n, _ in x)]
        t = tuple(chorus) or t
    return t[int(rng.integers(len(t)))]


def _fonts_for(style: str, soundfonts: list[str], kit: bool) -> list[SoundFont]:
    """The fonts among `soundfonts` that a style may play (kit fonts, or main fonts)."""
    return [f for f in SOUNDFONTS if f.name in soundfonts and f.kit == kit and (not f.styles or style in f.styles)]


def _pick_font(rng: np.random.Generator, fonts: list[SoundFont], own_share: float) -> str:
    """A font by weight; fonts made for the style (`styles` set) together take `own_share`."""
    own = [f for f in fonts if f.styles]
    general = [f for f in fonts if not f.styles]
    if own and (not general or rng.random() < own_share):
        general = own
    w = np.array([f.weight for f in general])
    return general[int(rng.choice(len(general), p=w / w.sum()))].name


def plan_composition(seed: int, k: int, style: str, soundfonts: list[str], first_index: int,
                     score_ref: str | None = None) -> list[ClipPlan]:
    """The clips (one or two) of composition k: same tempo, key, instruments; different sections."""
    rng = np.random.default_rng([seed, k, 1])
    st = DEFS[style]
    lo, hi = max(st.bpm[0], TRAIN_BPM_MIN), min(st.bpm[1], TRAIN_BPM_MAX)
    bpm = float(round(rng.uniform(lo, hi)))
    key = TONICS[int(rng.integers(12))]
    mode = _weighted(rng, st.modes)
    meter = _weighted(rng, st.meters)
    soundfont = _pick_font(rng, _fonts_for(style, soundfonts, kit=False), CHIP_FONT_SHARE)
    drum_kit = int(rng.choice(st.kits)) if st.drums != "none" else None
    programs: list[tuple[str, int]] = []
    for role, pool in st.programs.items():
        if role in st.extra_roles and rng.random() < 0.4:
            continue
        programs.append((role, int(rng.choice(pool))))
    e_lo, e_hi = st.energy
    energy = round(float(rng.uniform(e_lo, e_hi)), 2)
    dyn_x = energy + rng.normal(0, 0.1)
    dynamics = "soft" if dyn_x < 0.4 else ("medium" if dyn_x < 0.72 else "loud")
    fam = MOODS_MAJOR if mode in ("major", "mixolydian") else MOODS_MINOR
    moods = [m for m in st.moods if m in fam] or list(st.moods)
    mood = str(rng.choice(moods))
    era = str(rng.choice(st.eras))
    comp_id = score_ref.replace("/", "_").replace("#", "_") if score_ref else f"{style}-{seed}-{k:06d}"
    n_clips = 2 if rng.random() < 0.35 else 1
    song_seed = int(rng.integers(2**31))
    kits = _fonts_for(style, soundfonts, kit=True) if drum_kit is not None and style in ACOUSTIC_KIT_STYLES else []
    drum_font = _pick_font(rng, kits, 1.0) if kits and rng.random() < ACOUSTIC_KIT_SHARE else None
    plans = []
    for j in range(n_clips):
        crng = np.random.default_rng([seed, k, 2, j])
        bars = _bars_for(crng, bpm, meter)
        plans.append(ClipPlan(
            index=first_index + j, seed=int(crng.integers(2**31)), composition_id=comp_id, style=style,
            bpm=bpm, key=key, mode=mode, meter=meter, bars=bars,
            sections=_sections(crng, bars, second=j == 1), programs=tuple(programs), drum_kit=drum_kit,
            soundfont=soundfont, energy=energy, dynamics=dynamics, mood=mood, era=era,
            song_seed=song_seed, score=score_ref, drum_soundfont=drum_font))
    return plans


def plan_corpus(seed: int, hours: float, soundfonts: list[str], styles: tuple[str, ...] = STYLES
                ) -> list[ClipPlan]:
    """Clips until their total duration reaches `hours`; styles balanced in shuffled rounds."""
    target = hours * 3600.0
    plans: list[ClipPlan] = []
    total, k = 0.0, 0
    order: list[str] = []
    rng = np.random.default_rng([seed, 0])
    while total < target:
        if not order:
            order = list(styles)
            rng.shuffle(order)
        style = order.pop()
        ref = None
        if style in SCORE_STYLES:
            from .scores import pick_score

            ref = pick_score(style, np.random.default_rng([seed, k, 3]))
        for p in plan_composition(seed, k, style, soundfonts, len(plans), score_ref=ref):
            plans.append(p)
            total += p.duration
        k += 1
    return plans


def split_for(plan: ClipPlan) -> str:
    return split_of(plan.composition_id)
