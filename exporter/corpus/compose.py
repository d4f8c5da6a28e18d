"""Composition: a clip plan -> parts of notes (drums, bass, chords, lead, pad, arp), per style.

Everything is driven by one numpy Generator seeded from the clip's seed, so the same plan always
gives the same notes. Time is in quarter notes from the clip's first downbeat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from n2m.bridge.controls import BEATS_PER_BAR, TONICS

from . import theory as th
from .patterns import _FILL, _V, DRUMS
from .styles import DEFS, StyleDef


@dataclass(frozen=True)
class ClipPlan:
    """Everything chosen before composing: the labels of the clip and what it is played with."""

    index: int
    seed: int
    composition_id: str
    style: str
    bpm: float
    key: str
    mode: str
    meter: str
    bars: int
    sections: tuple[tuple[str, int], ...]  # (name, bars), in order, summing to bars
    programs: tuple[tuple[str, int], ...]  # (role, GM program)
    drum_kit: int | None
    soundfont: str
    energy: float
    dynamics: str  # soft, medium, loud
    mood: str
    era: str
    song_seed: int  # shared by the clips of one composition (same progression and motifs)
    score: str | None = None  # music21 corpus reference for score-based styles
    drum_soundfont: str | None = None  # a kit font (synth.SoundFont.kit) for the drums, else the main font

    @property
    def quarters_per_bar(self) -> float:
        return BEATS_PER_BAR[self.meter]

    @property
    def duration(self) -> float:
        return self.bars * self.quarters_per_bar * 60.0 / self.bpm


# Drum patterns: per meter, per drum key, one character per 16th: X accent, x normal, o soft, g ghost.
def _fallback_pattern(meter: str) -> dict[int, str]:
    return {"4/4": {th.KICK: "X-------X-------", th.SNARE: "----x-------x---", th.CHH: "x-o-x-o-x-o-x-o-"},
            "3/4": {th.KICK: "X-----------", th.SNARE: "----x---x---", th.CHH: "x-o-x-o-x-o-"},
            "6/8": {th.KICK: "X-----x-----", th.SNARE: "------x-----", th.CHH: "x-o-o-x-o-o-"}}[meter]


class Composer:
    def __init__(self, plan: ClipPlan) -> None:
        self.plan = plan
        self.style: StyleDef = DEFS[plan.style]
        self.rng = np.random.default_rng([plan.seed, 7])
        self.song_rng = np.random.default_rng([plan.song_seed, 11])  # shared by the composition
        self.tonic = TONICS.index(plan.key)
        self.qpb = plan.quarters_per_bar
        self.steps = int(round(self.qpb * 4))
        self.vel_scale = {"soft": 0.72, "medium": 0.88, "loud": 1.0}[plan.dynamics]
        self.bar_sections: list[str] = [name for name, n in plan.sections for _ in range(n)]

    # -- helpers --------------------------------------------------------------------------------
    def vel(self, v: float) -> int:
        jitter = self.rng.normal(0, 4)
        return int(np.clip(v * self.vel_scale + jitter, 20, 127))

    def swung(self, q: float) -> float:
        """Delay off-beat 8ths (or 16ths at slow tempi) by the style's swing."""
        sw = self.style.swing
        if sw <= 0:
            return q
        unit = 0.5 if self.plan.bpm >= 100 or self.style.name == "swing_jazz" else 0.25
        pos = q / unit
        if abs(pos - round(pos)) < 1e-6 and int(round(pos)) % 2 == 1:
            return q + sw * unit
        return q

    def chord_plan(self) -> list[tuple[float, float, int]]:
        """(start, length, degree) for the whole clip, from the composition's progression."""
        st = self.style
        prog = st.progressions[int(self.song_rng.integers(len(st.progressions)))]
        if len(prog) == 2 and 0 in prog:  # two-chord vamps lean on the tonic: i iv i i, not i iv i iv
            other = prog[1] if prog[0] == 0 else prog[0]
            prog = (0, other, 0, 0) if prog[0] == 0 else (other, 0, other, 0)
        bars_per = float(st.chord_bars[int(self.song_rng.integers(len(st.chord_bars)))])
        if self.plan.meter != "4/4" and bars_per < 1:
            bars_per = 1.0
        out, t, i = [], 0.0, 0
        total = self.plan.bars * self.qpb
        while t < total - 1e-6:
            ln = min(bars_per * self.qpb, total - t)
            out.append((t, ln, prog[i % len(prog)]))
            t += ln
            i += 1
        # cadence: the clip's last chord is the tonic (the loop comes home)
        if len(out) >= 2:
            s, ln, _ = out[-1]
            out[-1] = (s, ln, 0)
        return out

    def chord_tones(self, degree: int, size: int, octave: int) -> list[int]:
        return th.diatonic_chord(self.tonic, self.plan.mode, degree, size, octave, self.style.raise_leading)

    def program(self, role: str) -> int | None:
        for r, p in self.plan.programs:
            if r == role:
                return p
        return None

    # -- parts ----------------------------------------------------------------------------------
    def compose(self) -> list[th.Part]:
        parts: list[th.Part] = []
        chords = self.chord_plan()
        if self.style.drums != "none" and self.plan.drum_kit is not None:
            parts.append(self.drums())
        if (p := self.program("bass")) is not None:
            parts.append(th.Part("bass", p, self.bass(chords), pan=64, volume=108))
        if (p := self.program("chords")) is not None:
            parts.append(th.Part("chords", p, self.comp(chords, self.style.comp), pan=50, volume=88))
        if (p := self.program("pad")) is not None:
            parts.append(th.Part("pad", p, self.comp(chords, "pad", octave=4), pan=80, volume=70))
        if (p := self.program("arp")) is not None:
            parts.append(th.Part("arp", p, self.comp(chords, "arp8", octave=5), pan=84, volume=74))
        if (p := self.program("lead")) is not None:
            parts.append(th.Part("lead", p, self.lead(chords), pan=72, volume=96))
        return parts

    def drums(self) -> th.Part:
        st, plan = self.style, self.plan
        fam = DRUMS.get(st.drums, {})
        pat = fam.get(plan.meter) or _fallback_pattern(plan.meter)
        notes: list[th.Note] = []
        e = plan.energy
        for bar in range(plan.bars):
            sec = self.bar_sections[bar]
            start = bar * self.qpb
            last_of_section = bar + 1 < plan.bars and self.bar_sections[bar + 1] != sec
            fill = (last_of_section or (bar == plan.bars - 1 and plan.bars >= 4)) and e > 0.35 \
                and sec != "intro"
            for key, row in pat.items():
                if sec == "intro" and key in (th.SNARE, th.CLAP, th.RIM) and st.drums not in ("pulse",):
                    continue  # intros keep the kick and hats, hold back the backbeat
                if sec == "breakdown" and key == th.KICK:
                    continue
                if fill and key in (th.SNARE, th.CLAP) and row.count("-") > 0:
                    continue
                for i, ch in enumerate(row[: self.steps]):
                    if ch == "-":
                        continue
                    if ch == "g" and e < 0.3 and key in (th.CHH, th.SHAKER):
                        continue
                    notes.append(th.Note(start + self.swung(i * 0.25), 0.25, key, self.vel(_V[ch])))
            # denser hats with energy
            if e > 0.75 and st.drums in ("four_floor", "disco", "pop", "rock", "chip") and sec != "intro":
                for i in range(1, self.steps, 2):
                    notes.append(th.Note(start + i * 0.25, 0.25, th.CHH, self.vel(40)))
            if fill:
                for i, ch in enumerate(_FILL[plan.meter][: self.steps]):
                    if ch != "-":
                        tom = (th.HTOM, th.MTOM, th.LTOM)[min(2, i * 3 // self.steps)]
                        key = th.SNARE if i % 2 == 0 or st.drums in ("trap", "chip") else tom
                        notes.append(th.Note(start + i * 0.25, 0.25, key, self.vel(70 + 3 * i)))
            new_section = bar == 0 or (self.bar_sections[bar - 1] != sec and sec in ("chorus", "drop"))
            if new_section and st.drums not in ("pulse", "lofi", "bossa", "swing", "one_drop") \
                    and sec != "intro":
                notes.append(th.Note(start, 2.0, th.CRASH, self.vel(100)))
        return th.Part("drums", plan.drum_kit or 0, notes, is_drums=True, volume=110)

    def bass(self, chords: list[tuple[float, float, int]]) -> list[th.Note]:
        kind, notes = self.style.bass, []
        oct_ = 2
        kick_row = (DRUMS.get(self.style.drums, {}).get(self.plan.meter) or {}).get(th.KICK, "X" + "-" * 15)
        prev = None
        for ci, (s, ln, deg) in enumerate(chords):
            root = th.scale_pitch(self.tonic, self.plan.mode, deg, oct_)
            if root > 52:
                root -= 12
            fifth = th.scale_pitch(self.tonic, self.plan.mode, deg + 4, oct_)
            if fifth - root > 12:
                fifth -= 12
            sec_ok = [self.bar_sections[min(int((s + q) // self.qpb), self.plan.bars - 1)] != "breakdown"
                      for q in (0,)]
            if not sec_ok[0] and kind not in ("pedal", "sub_long"):
                notes.append(th.Note(s, ln, root, self.vel(70)))
                continue

            def add(q: float, d: float, p: int, v: float, s=s, ln=ln) -> None:
                if q < ln - 1e-6:
                    notes.append(th.Note(s + self.swung(q), min(d, ln - q), p, self.vel(v)))

            prev = self._bass_bar(kind, add, root, fifth, ln, chords, ci, kick_row, prev, oct_)
        return notes

    def _bass_bar(self, kind: str, add, root: int, fifth: int, ln: float, chords, ci: int, kick_row: str,
                  prev, oct_: int):
        """One chord's bass line in the style's pattern `kind` (notes through `add`); returns the
        funk motif carried to the next chord."""
        if kind == "offbeat":
            for b in np.arange(0, ln, 1.0):
                add(b + 0.5, 0.4, root, 100)
        elif kind == "rolling":
            for b in np.arange(0, ln, 1.0):
                for k, off in enumerate((0.25, 0.5, 0.75)):
                    add(b + off, 0.2, root + (12 if k == 1 and self.rng.random() < 0.3 else 0), 95 - 10 * k)
        elif kind == "sub_long":
            bar_steps = kick_row[: self.steps]
            for b0 in np.arange(0, ln, self.qpb):
                hits = [i for i, c in enumerate(bar_steps) if c != "-"] or [0]
                for j, i in enumerate(hits):
                    end = hits[j + 1] if j + 1 < len(hits) else self.steps
                    add(b0 + i * 0.25, (end - i) * 0.25, root, 110)
        elif kind == "follow_kick":
            for b0 in np.arange(0, ln, self.qpb):
                for i, c in enumerate(kick_row[: self.steps]):
                    if c != "-":
                        add(b0 + i * 0.25, 0.7, root if i < 8 or self.rng.random() < 0.6 else fifth, 100)
        elif kind == "root8":
            for b in np.arange(0, ln, 0.5):
                p = root + (12 if self.style.name == "pop" and int(b * 2) % 4 == 3 else 0)
                add(b, 0.45, p, 105 if b % 1 == 0 else 88)
        elif kind == "funk16":
            motif = self.song_rng.choice([0, 12, 7, -2, 10], size=8) if prev is None else prev
            prev = motif
            rhythm = (0, 0.75, 1.5, 1.75, 2.5, 3.0, 3.25, 3.5)
            for b0 in np.arange(0, ln, 4.0):
                for k, r in enumerate(rhythm):
                    add(b0 + r, 0.2 if k % 2 else 0.4, root + int(motif[k]) if k else root, 110 if k == 0 else 90)
        elif kind == "octave":
            for k, b in enumerate(np.arange(0, ln, 0.5)):
                add(b, 0.4, root + (12 if k % 2 else 0), 100)
        elif kind == "walking":
            nxt = chords[ci + 1][2] if ci + 1 < len(chords) else 0
            target = th.scale_pitch(self.tonic, self.plan.mode, nxt, oct_)
            beats = list(np.arange(0, ln, 1.0))
            line = [root]
            for k in range(1, len(beats)):
                if k == len(beats) - 1:
                    line.append(target + (1 if self.rng.random() < 0.5 else -1))
                else:
                    cands = [root + 4 if self.plan.mode == "major" else root + 3, fifth, root + 12, root + 2]
                    line.append(int(self.rng.choice(cands)))
            for b, p in zip(beats, line, strict=True):
                add(b, 0.9, p, 92)
        elif kind == "bossa":
            for b0 in np.arange(0, ln, 2.0):
                add(b0, 1.4, root, 96)
                add(b0 + 1.5, 0.5, fifth, 80)
        elif kind == "reggae":
            for b0 in np.arange(0, ln, 4.0):
                add(b0, 0.9, root, 105)
                add(b0 + 1.5, 0.4, root, 85)
                add(b0 + 2.0, 0.9, fifth, 95)
                add(b0 + 3.0, 0.45, root + 12 if self.rng.random() < 0.5 else root, 85)
        elif kind == "oom":
            step = 1.5 if self.plan.meter == "6/8" else (3.0 if self.plan.meter == "3/4" else 2.0)
            for k, b in enumerate(np.arange(0, ln, step)):
                add(b, min(1.0, step * 0.8), root if k % 2 == 0 else fifth, 98)
        elif kind == "chip_bass":
            for k, b in enumerate(np.arange(0, ln, 0.5)):
                add(b, 0.3, root + (12 if k % 2 else 0), 90)
        else:  # pedal
            add(0, ln, root, 85)
        return prev

    def comp(self, chords: list[tuple[float, float, int]], kind: str, octave: int = 4) -> list[th.Note]:
        notes: list[th.Note] = []
        prev: list[int] | None = None
        size = self.style.chord_size
        for s, ln, deg in chords:
            tones = self.chord_tones(deg, size, octave)
            voicing = th.voice_lead(prev, tones, 48 + 12 * (octave - 4), 76 + 12 * (octave - 4))
            prev = voicing
            bar_idx = min(int(s // self.qpb), self.plan.bars - 1)
            sec = self.bar_sections[bar_idx]
            if sec == "intro" and kind not in ("pad",):
                kind_here = "pad"
            else:
                kind_here = kind

            def hit(q: float, d: float, v: float, ps: list[int] = voicing, s=s, ln=ln) -> None:
                if q < ln - 1e-6:
                    for p in ps:
                        notes.append(th.Note(s + self.swung(q), min(d, ln - q), p, self.vel(v)))

            if kind_here == "pad":
                hit(0, ln, 70)
            elif kind_here == "stab":
                pat = ((0.5, 1.5, 2.5, 3.5), (0, 0.75, 1.5, 2.5, 3.25), (0.5, 1.0, 2.5, 3.0))[
                    int(self.song_rng.integers(3)) if s == 0 else 0]
                for b0 in np.arange(0, ln, 4.0):
                    for q in pat:
                        hit(b0 + q, 0.22, 92)
            elif kind_here == "skank":
                for b in np.arange(0, ln, 1.0):
                    if int(b) % 2 == 1 or self.plan.bpm > 80:
                        hit(b + 0.5 if self.plan.bpm > 80 else b, 0.2, 90)
            elif kind_here == "strum":
                step = 0.5
                for k, b in enumerate(np.arange(0, ln, step)):
                    ps = voicing if k % 2 == 0 else voicing[1:]
                    hit(b, 0.45, 95 if k % 2 == 0 else 70, ps)
            elif kind_here == "power":
                root = min(voicing)
                fifth = root + 7
                if root > 55:
                    root, fifth = root - 12, fifth - 12
                for b in np.arange(0, ln, 0.5):
                    hit(b, 0.45, 105, [root, fifth, root + 12])
            elif kind_here == "block":
                for b in np.arange(0, ln, 2.0):
                    hit(b, 1.8, 80)
                    if self.rng.random() < 0.5:
                        hit(b + 1.5, 0.4, 60)
            elif kind_here == "jazz":  # Charleston (a jazz waltz: beat 1 and the and of 2)
                for b0 in np.arange(0, ln, self.qpb):
                    hit(b0, 0.9, 78)
                    hit(b0 + 1.5, 0.45, 70)
            elif kind_here == "bossa":
                for b0 in np.arange(0, ln, 4.0):
                    for q in (0, 1.5, 3.0):
                        hit(b0 + q, 0.6, 74)
            elif kind_here == "waltz":
                for b0 in np.arange(0, ln, 3.0):
                    hit(b0 + 1, 0.6, 72)
                    hit(b0 + 2, 0.6, 68)
            elif kind_here in ("arp8", "arp16", "ostinato"):
                step = 0.25 if kind_here == "arp16" else 0.5
                seq = voicing + [voicing[0] + 12] if kind_here != "ostinato" else \
                    [voicing[0], voicing[-1], voicing[1], voicing[-1]]
                for k, b in enumerate(np.arange(0, ln, step)):
                    hit(b, step * 0.9, 84 if k % 2 == 0 else 70, [seq[k % len(seq)]])
            else:
                hit(0, ln, 70)
        return notes

    def lead(self, chords: list[tuple[float, float, int]]) -> list[th.Note]:
        """A motif-based melody: rhythm motif per composition, chord tones on strong beats."""
        kind = self.style.lead
        notes: list[th.Note] = []
        qpb = self.qpb
        if kind == "sparse":
            grid = [(0.0, qpb * 0.9)] if qpb < 4 else [(0.0, 1.5), (2.0, 1.5)]
        elif kind == "riff":
            grid = [(q, 0.4) for q in (0, 0.75, 1.5, 2.0, 3.0) if q < qpb]
        else:
            cand = np.arange(0, qpb, 0.5)
            keep = self.song_rng.random(len(cand)) < 0.6
            keep[0] = True
            starts = [float(c) for c, k in zip(cand, keep, strict=True) if k]
            grid = [(q, (starts[i + 1] if i + 1 < len(starts) else qpb) - q) for i, q in enumerate(starts)]
        contour = self.song_rng.integers(-2, 3, size=len(grid))
        deg_pos = 7  # scale degree index around octave 5
        chord_at = {int(s // qpb) + k: d for s, ln, d in chords for k in range(max(1, int(ln // qpb)))}
        for bar in range(self.plan.bars):
            sec = self.bar_sections[bar]
            if sec in ("intro", "breakdown") or (sec == "verse" and kind == "sparse" and bar % 2):
                continue
            deg = chord_at.get(bar, 0)
            for k, (q, d) in enumerate(grid):
                if k == 0 or q % 1 == 0:
                    ct = [deg + 7, deg + 9, deg + 11]
                    deg_pos = min(ct, key=lambda c: abs(c - deg_pos))
                    if (deg % 7) in (0, 2, 5) and (k == 0 and bar % 2 == 0 or bar == self.plan.bars - 1):
                        deg_pos = 7  # phrases start and end on the tonic (a chord tone of I, iii, vi)
                else:
                    deg_pos += int(contour[k]) if bar % 4 != 3 else -1
                deg_pos = int(np.clip(deg_pos, 3, 13))
                p = th.scale_pitch(self.tonic, self.plan.mode, deg_pos, 4)
                if kind == "riff" and k % 2 == 1:  # pedal riff: every other note back on the tonic
                    p = th.scale_pitch(self.tonic, self.plan.mode, 7 if deg_pos >= 7 else 0, 4)
                notes.append(th.Note(bar * qpb + self.swung(q), max(0.2, d * 0.9), p, self.vel(96)))
        return notes
