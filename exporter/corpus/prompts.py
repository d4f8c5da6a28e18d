"""The evaluation prompt set: requests in producers' words, with the controls each one asks for.

Templates and phrasing differ from the training captions on purpose (requests, not descriptions),
and every prompt is checked to be absent from the training captions. About half name one
instrument of the style's chord or lead part ("... with rhodes"), by the corpus' own label for it,
so the evaluation can ask the classifier whether that instrument is heard. Instruments are drawn
from a second random stream, so the other fields only differ from prompt sets made before they
were added where a prompt is rejected (a training caption, a control that does not read back).
"""

from __future__ import annotations

import numpy as np

from n2m.bridge.controls import BEATS_PER_BAR, TONICS, parse_controls

from . import theory as th
from .styles import DEFS, STYLES

_ASKS = ("give me", "I need", "make", "can I get", "cook up", "generate", "lay down", "sketch",
         "drop in", "let's hear")
_WHAT = ("a loop", "a groove", "an idea", "a bed", "a section", "a beat", "a vibe", "a passage")
_USE = ("for the intro of my track", "to build a song around", "for a YouTube background",
        "for my beat tape", "under a vocal", "for a game menu", "for a short film cue",
        "that I can chop", "for a late-night set", "for a podcast bumper", "", "", "")
_FEEL = {
    "house": ("jackin'", "soulful"), "techno": ("pounding", "hypnotic"), "drum_and_bass": ("rolling", "liquid"),
    "boom_bap": ("dusty", "head-nodding"), "trap": ("hard-hitting", "menacing"), "lofi": ("cozy", "rainy-day"),
    "funk": ("greasy", "tight"), "disco": ("glittery", "sweaty"), "rock": ("gritty", "anthemic"),
    "metal": ("crushing", "relentless"), "pop": ("catchy", "radio-ready"), "swing_jazz": ("swinging", "smoky"),
    "bossa_nova": ("breezy", "sun-soaked"), "reggae": ("sunny", "skanking"), "ambient": ("floating", "glacial"),
    "cinematic": ("sweeping", "heroic"), "chiptune": ("bleepy", "pixelated"), "waltz": ("elegant", "twirling"),
    "chorale": ("reverent", "hymn-like"), "folk": ("rustic", "pub-session"),
}


def eval_prompts(seed: int, train_captions: set[str], styles: tuple[str, ...] = STYLES,
                 per_style: int = 8) -> list[dict]:
    """At least 120 prompts (per_style for every style), none equal to a training caption."""
    rng = np.random.default_rng([seed, 99])
    irng = np.random.default_rng([seed, 98])  # instruments: a separate stream (see the docstring)
    per_style = max(per_style, -(-120 // len(styles)))
    lowered = {c.lower() for c in train_captions}
    out: list[dict] = []
    for style in styles:
        st = DEFS[style]
        made = 0
        tries = 0
        while made < per_style and tries < 100:
            tries += 1
            genre = str(rng.choice(st.words))
            feel = str(rng.choice(_FEEL.get(style, ("nice",))))
            ask, what, use = (str(rng.choice(x)) for x in (_ASKS, _WHAT, _USE))
            bpm = key = mode = meter = bars = None
            bits = []
            if rng.random() < 0.7:
                bpm = float(round(rng.uniform(max(60, st.bpm[0]), min(180, st.bpm[1]))))
                bits.append(str(rng.choice([f"{bpm:g} bpm", f"around {bpm:g} BPM", f"at {bpm:g}bpm"])))
            if rng.random() < 0.6:
                key = TONICS[int(rng.integers(12))]
                modes = list(st.modes)
                mode = str(rng.choice(modes))
                bits.append(f"in {key} {mode}")
            if rng.random() < 0.35 or len(st.meters) > 1 and rng.random() < 0.5:
                meter = str(rng.choice(list(st.meters)))
                bits.append(str(rng.choice([f"in {meter}", f"{meter} time"])))
            if rng.random() < 0.5:
                b = int(rng.choice([4, 8, 16]))
                qpb = BEATS_PER_BAR[meter or "4/4"]
                if bpm is None or 2.0 <= b * qpb * 60 / bpm <= 30.0:
                    bars = b
                    bits.append(f"{b} bars")
            rng.shuffle(bits)
            tail = (", " + ", ".join(bits)) if bits else ""
            roles = [r for r in ("comp", "lead") if st.programs.get(r)]
            instruments: list[str] = []
            pick, role_i, prog_i = irng.random(), irng.integers(1 << 16), irng.integers(1 << 16)
            if roles and pick < 0.5:
                progs = st.programs[roles[int(role_i) % len(roles)]]
                instruments = [th.friendly(int(progs[int(prog_i) % len(progs)]))]
            with_inst = f" with {instruments[0]}" if instruments else ""
            text = f"{ask} {what} of {feel} {genre}{with_inst}{tail} {use}".strip()
            text = text[0].upper() + text[1:]
            if text.lower() in lowered:
                continue
            parsed = parse_controls(text)
            if (parsed.bpm, parsed.key, parsed.mode, parsed.meter, parsed.bars) != (bpm, key, mode, meter, bars):
                continue  # only prompts whose controls read back exactly
            out.append({"prompt": text, "style": style, "bpm": bpm, "key": key, "mode": mode,
                        "meter": meter, "bars": bars, "instruments": instruments})
            made += 1
    return out
