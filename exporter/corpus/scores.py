"""Real scores from music21's shipped corpus, re-orchestrated with accompaniment.

- "chorale": Bach chorales (four voices) on an ensemble (organ, strings, brass, winds, choir),
  with a pizzicato/harp accompaniment that restates the bass on every beat.
- "folk": tunes from essenFolksong and O'Neill's 1850 collection: the melody on a folk lead
  instrument, chords harmonised bar by bar from the melody, bass and comping from the style.

Clips start at the first full bar (pickups are skipped) and loop the tune when it is shorter
than the clip. The tune is transposed to the planned key; mode and meter come from the score.
"""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from n2m.bridge.controls import BEATS_PER_BAR, TONICS

from . import theory as th
from .compose import ClipPlan, Composer
from .plan import MAX_SECONDS, MIN_SECONDS


class ScoreError(RuntimeError):
    """A score that cannot be used (meter, parse); the caller tries another."""


def _corpus_root() -> Path:
    from music21 import common

    return Path(common.getCorpusFilePath())


@functools.lru_cache(maxsize=2)
def score_index(style: str) -> tuple[str, ...]:
    """References ("bach/bwv1.6.mxl", "oneills1850/0001-0050.abc#3") usable for a style, sorted."""
    root = _corpus_root()
    if style == "chorale":
        return tuple(sorted(f"bach/{p.name}" for p in (root / "bach").glob("bwv*.mxl")))
    refs = []
    for folder in ("essenFolksong", "oneills1850"):
        for p in sorted((root / folder).glob("*.abc")):
            text = p.read_text(errors="replace")
            for n in re.findall(r"^X:\s*(\d+)", text, flags=re.M):
                refs.append(f"{folder}/{p.name}#{n}")
    return tuple(refs)


def pick_score(style: str, rng: np.random.Generator) -> str:
    idx = score_index(style)
    return idx[int(rng.integers(len(idx)))]


def _parse(ref: str):
    from music21 import converter

    path, _, num = ref.partition("#")
    full = _corpus_root() / path
    return converter.parse(str(full), number=int(num)) if num else converter.parse(str(full))


@functools.lru_cache(maxsize=8)  # the clips of one composition are built one after another
def extract(ref: str) -> dict:
    """meter, tonic pitch class, mode, bar length, and per-part notes (offset from the first full
    bar, duration, MIDI pitch), all in quarter notes."""
    score = _parse(ref)
    sigs = {ts.ratioString for ts in score.recurse().getElementsByClass("TimeSignature")}
    if len(sigs) != 1:
        raise ScoreError(f"{ref}: meter changes or missing ({sorted(sigs)})")
    meter = sigs.pop()
    if meter == "2/4":
        meter_out, bar_q = "4/4", 4.0  # two 2/4 bars make one 4/4 bar
    elif meter in BEATS_PER_BAR:
        meter_out, bar_q = meter, BEATS_PER_BAR[meter]
    else:
        raise ScoreError(f"{ref}: meter {meter} is not one of 4/4, 3/4, 6/8 (or 2/4)")
    k = score.analyze("key")
    mode = "minor" if k.mode == "minor" else "major"
    tonic = k.tonic.pitchClass
    parts = []
    start = None
    for part in score.parts:
        measures = list(part.getElementsByClass("Measure"))
        if not measures:
            continue
        if start is None:
            m0 = measures[0]
            native_bar = BEATS_PER_BAR.get(meter, 2.0)
            start = float(measures[1].offset) if (m0.duration.quarterLength < native_bar - 1e-6
                                                  and len(measures) > 1) else float(m0.offset)
        notes = []
        for n in part.stripTies().flatten().notes:
            off = float(n.getOffsetInHierarchy(part)) - start
            if off < -1e-6:
                continue
            dur = float(n.duration.quarterLength)
            if dur <= 0:
                continue
            for p in n.pitches:
                notes.append((off, dur, int(p.midi)))
        if notes:
            parts.append(notes)
    if not parts:
        raise ScoreError(f"{ref}: no notes")
    end = max(o + d for ps in parts for o, d, _ in ps)
    total_q = float(np.ceil(end / bar_q - 1e-6) * bar_q)
    if total_q < bar_q * 2:
        raise ScoreError(f"{ref}: too short")
    return {"meter": meter_out, "tonic": tonic, "mode": mode, "bar_q": bar_q, "parts": parts,
            "total_q": total_q, "source_meter": meter}


def _bars_for(rng: np.random.Generator, bpm: float, bar_q: float, total_q: float) -> int:
    bar_s = bar_q * 60.0 / bpm
    ok = [b for b in (4, 6, 8, 12, 16) if MIN_SECONDS <= b * bar_s <= MAX_SECONDS]
    if not ok:
        ok = [max(1, int(MAX_SECONDS // bar_s))]
    fits = [b for b in ok if b * bar_q <= total_q + 1e-6]
    pool = fits or ok
    return int(pool[int(rng.integers(len(pool)))])


def _loop(notes: list[tuple[float, float, int]], total_q: float, clip_q: float
          ) -> list[tuple[float, float, int]]:
    out = []
    rep = 0
    while rep * total_q < clip_q:
        for o, d, p in notes:
            t = o + rep * total_q
            if t < clip_q - 1e-6:
                out.append((t, min(d, clip_q - t), p))
        rep += 1
    return out


def _harmonise(melody: list[tuple[float, float, int]], tonic: int, mode: str, bar_q: float, bars: int
               ) -> list[tuple[float, float, int]]:
    """One diatonic chord per bar (half bar in 4/4) that best covers the melody's weighted notes."""
    seg = bar_q / 2 if bar_q == 4.0 else bar_q
    chords = []
    cands = (0, 3, 4, 5, 1) if mode == "major" else (0, 3, 4, 5, 6)
    n_seg = int(round(bars * bar_q / seg))
    for i in range(n_seg):
        s, e = i * seg, (i + 1) * seg
        w = np.zeros(12)
        for o, d, p in melody:
            ov = min(e, o + d) - max(s, o)
            if ov > 0:
                w[p % 12] += ov * (1.5 if abs(o - s) < 1e-6 else 1.0)
        best, best_score = 0, -1.0
        for deg in cands:
            pcs = {x % 12 for x in th.diatonic_chord(tonic, mode, deg, 3, 4)}
            score = sum(w[pc] for pc in pcs) + (0.3 if deg == 0 else 0.0)
            if score > best_score:
                best, best_score = deg, score
        if i == n_seg - 1:
            best = 0
        chords.append((s, seg, best))
    merged: list[tuple[float, float, int]] = []
    for c in chords:
        if merged and merged[-1][2] == c[2]:
            merged[-1] = (merged[-1][0], merged[-1][1] + c[1], c[2])
        else:
            merged.append(c)
    return merged


def resolve_score(plan: ClipPlan) -> tuple[ClipPlan, dict]:
    """The plan with the score's true meter, mode, bars (and a fallback score if the chosen one is
    unusable), plus the extracted score. Deterministic for the plan."""
    rng = np.random.default_rng([plan.seed, 17])
    idx = score_index(plan.style)
    ref = plan.score or pick_score(plan.style, rng)
    for attempt in range(12):
        try:
            sc = extract(ref)
            break
        except Exception as exc:  # noqa: BLE001 - music21 raises many kinds; any means "try another"
            if attempt == 11:
                raise ScoreError(f"no usable {plan.style} score near {plan.score}: {exc}") from exc
            ref = idx[int(rng.integers(len(idx)))]
    bars = _bars_for(rng, plan.bpm, sc["bar_q"], sc["total_q"])
    half = bars // 2
    sections = (("verse", bars),) if bars < 8 else (("verse", half), ("chorus", bars - half))
    from .styles import DEFS, MOODS_MAJOR, MOODS_MINOR

    fam = MOODS_MAJOR if sc["mode"] == "major" else MOODS_MINOR
    mood = plan.mood if plan.mood in fam else str(
        rng.choice([m for m in DEFS[plan.style].moods if m in fam] or list(fam)))
    new = replace(plan, meter=sc["meter"], mode=sc["mode"], bars=bars, sections=sections, score=ref, mood=mood,
                  composition_id=ref.replace("/", "_").replace("#", "_"))
    return new, sc


def compose_score(plan: ClipPlan, sc: dict) -> list[th.Part]:
    """Parts for a resolved score plan."""
    clip_q = plan.bars * BEATS_PER_BAR[plan.meter]
    target = TONICS.index(plan.key)
    shift = (target - sc["tonic"]) % 12
    if shift > 6:
        shift -= 12
    rng = np.random.default_rng([plan.seed, 19])
    vel_scale = {"soft": 0.7, "medium": 0.85, "loud": 1.0}[plan.dynamics]
    voices = [_loop(ps, sc["total_q"], clip_q) for ps in sc["parts"]]
    voices = [[(o, d, p + shift) for o, d, p in v] for v in voices]
    parts: list[th.Part] = []
    progs = dict(plan.programs)

    def v(x: float) -> int:
        return int(np.clip(x * vel_scale + rng.normal(0, 4), 25, 120))

    if plan.style == "chorale":
        ens = [p for r, p in plan.programs if r.startswith("voice")] or [progs.get("ensemble", 48)] * 4
        pans = (40, 56, 72, 88)
        for i, notes in enumerate(voices[:4]):
            prog = ens[i % len(ens)]
            parts.append(th.Part(f"voice{i + 1}", prog, [th.Note(o, d * 0.97, p, v(82)) for o, d, p in notes],
                                 pan=pans[i % 4], volume=96))
        bass = voices[min(3, len(voices) - 1)]
        acc = []
        for o, d, p in bass:  # restate the bass on every beat: the accompaniment's pulse
            t = o
            while t < o + d - 1e-6:
                acc.append(th.Note(t, 0.5, p - 12 if p >= 48 else p, v(90 if t % 1 == 0 else 70)))
                t = float(np.floor(t + 1.0 + 1e-6))
        parts.append(th.Part("accompaniment", progs.get("accompaniment", 45), acc, pan=64, volume=100))
        return parts
    # folk: melody + harmonised accompaniment through the composer's bass and comping
    melody = voices[0]
    mel_oct = 0
    if melody:
        mean = float(np.mean([p for _, _, p in melody]))
        mel_oct = 12 * int(round((72 - mean) / 12))
    lead = [th.Note(o, d * 0.92, p + mel_oct, v(96 if o % BEATS_PER_BAR[plan.meter] == 0 else 84))
            for o, d, p in melody]
    composer = Composer(plan)
    chords = _harmonise([(o, d, p) for o, d, p in melody], target, plan.mode, BEATS_PER_BAR[plan.meter],
                        plan.bars)
    if plan.drum_kit is not None:
        parts.append(composer.drums())
    if "bass" in progs:
        parts.append(th.Part("bass", progs["bass"], composer.bass(chords), volume=100))
    if "chords" in progs:
        kind = "waltz" if plan.meter == "3/4" else "strum"
        parts.append(th.Part("chords", progs["chords"], composer.comp(chords, kind), pan=48, volume=84))
    parts.append(th.Part("lead", progs.get("lead", 73), lead, pan=76, volume=104))
    return parts
