"""The styles of the corpus: what each one's tempo, meter, harmony, groove, instruments and mix are.

STYLES is the label set (the evaluation classifier trains on exactly these). Each StyleDef is data;
compose.py turns it into notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STYLES: tuple[str, ...] = (
    "house", "techno", "drum_and_bass", "boom_bap", "trap", "lofi", "funk", "disco", "rock",
    "metal", "pop", "swing_jazz", "bossa_nova", "reggae", "ambient", "cinematic", "chiptune",
    "waltz", "chorale", "folk",
)

MOODS_MAJOR = ("happy", "uplifting", "playful", "bright", "hopeful", "warm", "chill", "peaceful",
               "romantic", "groovy", "energetic", "triumphant", "nostalgic")
MOODS_MINOR = ("dark", "melancholic", "moody", "tense", "mysterious", "aggressive", "sad",
               "brooding", "dreamy", "chill", "energetic", "epic", "nostalgic", "groovy")


@dataclass(frozen=True)
class StyleDef:
    name: str
    words: tuple[str, ...]  # genre words for captions (synonyms)
    bpm: tuple[float, float]
    meters: dict[str, float]
    modes: dict[str, float]
    progressions: tuple[tuple[int, ...], ...]  # scale degrees (0 = tonic)
    chord_bars: tuple[float, ...]  # bars per chord
    chord_size: int  # 3 triads, 4 sevenths
    drums: str  # drum pattern family ("none" for no drums)
    kits: tuple[int, ...]
    bass: str
    comp: str
    lead: str
    programs: dict[str, tuple[int, ...]]  # role -> GM programs to pick from
    moods: tuple[str, ...]
    eras: tuple[str, ...]
    mix: str
    swing: float = 0.0
    energy: tuple[float, float] = (0.3, 0.9)
    extra_roles: tuple[str, ...] = field(default_factory=tuple)  # optional roles (pad, arp, counter)
    raise_leading: bool = False


_POP_PROGS = ((0, 5, 3, 4), (0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 4, 3), (0, 5, 1, 4))
_MINOR_PROGS = ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4))

DEFS: dict[str, StyleDef] = {d.name: d for d in (
    StyleDef("house", ("house", "deep house", "house music", "club house"), (118, 128),
             {"4/4": 1}, {"minor": 0.5, "major": 0.2, "dorian": 0.3},
             ((0, 3), (0, 5, 3, 4), (0, 6, 5, 6), (0, 2, 3, 4)), (1, 2), 4, "four_floor", (0, 24, 25),
             "offbeat", "stab", "sparse",
             {"bass": (38, 39, 33), "chords": (4, 0, 89, 90, 16), "lead": (81, 80, 11), "pad": (89, 88, 50)},
             ("groovy", "uplifting", "dreamy", "energetic", "warm", "chill"), ("90s", "2010s", "modern"),
             "club", extra_roles=("pad",)),
    StyleDef("techno", ("techno", "minimal techno", "warehouse techno", "Berlin techno"), (124, 138),
             {"4/4": 1}, {"minor": 0.7, "dorian": 0.3}, ((0,), (0, 6), (0, 5)), (2, 4), 3,
             "techno", (24, 25, 0), "rolling", "stab", "riff",
             {"bass": (38, 39, 87), "chords": (90, 81, 95, 50), "lead": (81, 84, 80, 99), "pad": (95, 99, 92)},
             ("dark", "hypnotic", "tense", "energetic", "driving", "mysterious"), ("90s", "modern", "2000s"),
             "club", energy=(0.5, 1.0), extra_roles=("pad",)),
    StyleDef("drum_and_bass", ("drum and bass", "dnb", "jungle-tinged drum and bass", "liquid dnb"),
             (160, 178), {"4/4": 1}, {"minor": 0.8, "dorian": 0.2}, _MINOR_PROGS, (1, 2), 4,
             "dnb", (0, 24, 8), "sub_long", "pad", "melody",
             {"bass": (38, 39, 87), "chords": (4, 89, 88, 48), "lead": (81, 73, 11, 5), "pad": (89, 88, 94)},
             ("energetic", "dark", "dreamy", "tense", "uplifting"), ("90s", "2000s", "modern"),
             "club", energy=(0.6, 1.0), extra_roles=("pad",)),
    StyleDef("boom_bap", ("boom bap", "boom-bap hip-hop", "90s hip hop beat", "golden-era hip-hop"),
             (84, 98), {"4/4": 1}, {"minor": 0.7, "dorian": 0.3}, ((0, 3), (0, 5, 3, 4), (0, 2), (0, 6, 5)),
             (1, 2), 4, "boombap", (0, 8, 16), "follow_kick", "block", "sparse",
             {"bass": (33, 32, 38), "chords": (4, 0, 11, 48, 24), "lead": (65, 73, 11, 56)},
             ("moody", "nostalgic", "groovy", "chill", "dark"), ("90s", "retro"),
             "dusty", swing=0.18, energy=(0.4, 0.8)),
    StyleDef("trap", ("trap", "trap beat", "modern trap", "atlanta trap"), (130, 155), {"4/4": 1},
             {"minor": 1.0}, ((0, 5, 2, 6), (0, 3), (0, 1), (0, 5)), (2,), 3, "trap", (25, 24),
             "sub_long", "pad", "riff",
             {"bass": (38, 39), "chords": (89, 48, 0, 52, 10), "lead": (10, 9, 80, 81, 73, 46)},
             ("dark", "aggressive", "tense", "moody", "epic"), ("2010s", "modern"),
             "club", energy=(0.5, 1.0)),
    StyleDef("lofi", ("lo-fi", "lofi hip hop", "chillhop", "lo-fi beat"), (68, 88), {"4/4": 0.75, "3/4": 0.25},
             {"major": 0.4, "dorian": 0.3, "minor": 0.3}, ((1, 4, 0), (0, 5, 1, 4), (3, 2, 1, 0), (0, 3)),
             (1,), 4, "lofi", (0, 8, 32, 40), "follow_kick", "block", "sparse",
             {"bass": (33, 32, 35), "chords": (4, 0, 5, 11, 24), "lead": (11, 73, 4, 12)},
             ("chill", "nostalgic", "dreamy", "warm", "melancholic", "peaceful"), ("modern", "2010s", "retro"),
             "lofi", swing=0.2, energy=(0.2, 0.6)),
    StyleDef("funk", ("funk", "funky groove", "70s funk", "p-funk"), (96, 118), {"4/4": 1},
             {"mixolydian": 0.5, "dorian": 0.4, "minor": 0.1}, ((0,), (0, 3), (0, 6, 3)), (1, 2), 4,
             "funk", (0, 8, 16), "funk16", "stab", "riff",
             {"bass": (36, 33, 37), "chords": (7, 27, 28, 4, 16), "lead": (61, 66, 56, 18)},
             ("groovy", "playful", "energetic", "happy"), ("70s", "retro"), "warm_bus", swing=0.08,
             energy=(0.5, 1.0)),
    StyleDef("disco", ("disco", "nu-disco", "70s disco", "dance-floor disco"), (112, 126), {"4/4": 1},
             {"minor": 0.5, "major": 0.3, "dorian": 0.2}, ((0, 3), (0, 5, 1, 4), (0, 6, 5, 6), (1, 4, 0)),
             (1, 2), 4, "disco", (0, 8, 24), "octave", "strum", "melody",
             {"bass": (33, 34, 38), "chords": (27, 48, 4, 50), "lead": (48, 61, 81, 73), "pad": (48, 49, 50)},
             ("groovy", "happy", "energetic", "uplifting", "romantic"), ("70s", "80s", "retro"),
             "warm_bus", energy=(0.6, 1.0), extra_roles=("pad",)),
    StyleDef("rock", ("rock", "indie rock", "classic rock", "garage rock", "alt-rock"), (100, 160),
             {"4/4": 0.7, "6/8": 0.3}, {"major": 0.5, "minor": 0.3, "mixolydian": 0.2},
             ((0, 4, 5, 3), (0, 3, 0, 4), (0, 3, 4, 3), (5, 3, 0, 4)), (1,), 3, "rock", (0, 8, 16),
             "root8", "power", "melody",
             {"bass": (34, 33), "chords": (29, 30, 27, 25), "lead": (29, 27, 18, 30)},
             ("energetic", "uplifting", "aggressive", "nostalgic", "happy"), ("70s", "80s", "90s", "2000s"),
             "rock", energy=(0.5, 1.0)),
    StyleDef("metal", ("metal", "heavy metal", "thrash metal", "hard rock"), (120, 180), {"4/4": 0.9, "6/8": 0.1},
             {"minor": 1.0}, ((0, 5, 6, 0), (0, 0, 5, 6), (0, 3, 0, 4), (0, 6, 5, 6)), (1, 0.5), 3,
             "metal", (16, 0, 8), "root8", "power", "riff",
             {"bass": (34, 33), "chords": (30, 29), "lead": (30, 29)},
             ("aggressive", "dark", "epic", "tense", "energetic"), ("80s", "90s", "modern"), "metal",
             energy=(0.7, 1.0)),
    StyleDef("pop", ("pop", "synth-pop", "modern pop", "radio pop", "indie pop"), (90, 128),
             {"4/4": 0.75, "6/8": 0.25}, {"major": 0.75, "minor": 0.25}, _POP_PROGS, (1,), 3, "pop",
             (0, 24, 25), "root8", "strum", "melody",
             {"bass": (33, 38, 34), "chords": (0, 25, 90, 4, 27), "lead": (81, 0, 11, 73, 80), "pad": (89, 88, 50)},
             ("happy", "uplifting", "romantic", "bright", "hopeful", "energetic"), ("80s", "2000s", "2010s", "modern"),
             "pop", extra_roles=("pad",)),
    StyleDef("swing_jazz", ("swing", "swing jazz", "big band swing", "jazz combo"), (110, 180),
             {"4/4": 0.65, "3/4": 0.35}, {"major": 0.7, "minor": 0.3}, ((1, 4, 0, 0), (0, 5, 1, 4), (2, 5, 1, 4), (0, 3, 1, 4)),
             (1,), 4, "swing", (32, 40), "walking", "jazz", "melody",
             {"bass": (32,), "chords": (0, 26, 11), "lead": (65, 66, 56, 57, 71, 11)},
             ("playful", "happy", "warm", "romantic", "energetic"), ("1940s", "1950s", "retro"), "jazz",
             swing=0.33, energy=(0.4, 0.9)),
    StyleDef("bossa_nova", ("bossa nova", "bossa", "brazilian jazz", "samba-jazz"), (120, 145),
             {"4/4": 1}, {"major": 0.6, "minor": 0.25, "dorian": 0.15}, ((1, 4, 0, 0), (0, 3, 1, 4), (0, 1, 4, 0)),
             (1,), 4, "bossa", (40, 32, 0), "bossa", "bossa", "melody",
             {"bass": (32, 33), "chords": (24, 0, 4), "lead": (73, 65, 71, 11, 22)},
             ("romantic", "chill", "warm", "peaceful", "nostalgic"), ("1960s", "retro"), "jazz",
             energy=(0.2, 0.6)),
    StyleDef("reggae", ("reggae", "roots reggae", "one-drop reggae", "dub-flavoured reggae"), (66, 90),
             {"4/4": 1}, {"major": 0.5, "minor": 0.3, "dorian": 0.2}, ((0, 3), (0, 4, 3, 4), (0, 6), (0, 5, 3, 4)),
             (1, 2), 3, "one_drop", (0, 8), "reggae", "skank", "sparse",
             {"bass": (33, 34), "chords": (27, 16, 0, 17), "lead": (16, 61, 66, 22)},
             ("chill", "warm", "happy", "peaceful", "groovy"), ("70s", "retro"), "dub", swing=0.12,
             energy=(0.3, 0.7)),
    StyleDef("ambient", ("ambient", "ambient soundscape", "drone-ambient", "new age"), (60, 90),
             {"4/4": 0.4, "3/4": 0.6}, {"major": 0.4, "minor": 0.4, "dorian": 0.2},
             ((0, 5), (0, 3), (0, 4, 5, 3), (0, 6)), (2, 4), 4, "pulse", (0, 48), "pedal", "pad", "sparse",
             {"bass": (89, 92, 39), "chords": (88, 89, 94, 91, 99, 49), "lead": (10, 8, 46, 108, 73), "arp": (46, 10, 108, 11, 4)},
             ("dreamy", "peaceful", "mysterious", "melancholic", "warm", "hopeful"), ("modern", "timeless"),
             "ambient", energy=(0.1, 0.4), extra_roles=("arp",)),
    StyleDef("cinematic", ("cinematic", "orchestral", "film score", "epic orchestral", "trailer music"),
             (70, 140), {"4/4": 0.45, "3/4": 0.25, "6/8": 0.3}, {"minor": 0.7, "major": 0.3},
             ((0, 5, 2, 6), (0, 3, 5, 4), (0, 5, 3, 4), (0, 6, 5, 4)), (1, 2), 3, "orchestral", (48,),
             "pedal", "ostinato", "melody",
             {"bass": (43, 42, 58), "chords": (48, 49, 44, 45), "lead": (60, 40, 73, 61, 56, 52), "pad": (52, 61, 57)},
             ("epic", "tense", "triumphant", "melancholic", "mysterious", "hopeful"), ("modern", "timeless"),
             "hall", energy=(0.4, 1.0), extra_roles=("pad",), raise_leading=True),
    StyleDef("chiptune", ("chiptune", "8-bit", "video game music", "retro game soundtrack"), (110, 170),
             {"4/4": 0.85, "3/4": 0.15}, {"major": 0.5, "minor": 0.4, "dorian": 0.1}, _POP_PROGS + _MINOR_PROGS[:2], (1,), 3,
             "chip", (24, 25), "chip_bass", "arp16", "melody",
             {"bass": (80, 38, 81), "chords": (80, 81), "lead": (80, 81, 82)},
             ("playful", "happy", "energetic", "nostalgic", "tense"), ("80s", "retro"), "chip",
             energy=(0.5, 1.0)),
    StyleDef("waltz", ("waltz", "viennese waltz", "jazz waltz", "musette waltz"), (84, 180),
             {"3/4": 1}, {"major": 0.6, "minor": 0.4}, ((0, 0, 4, 0), (0, 3, 4, 0), (0, 3, 0, 4), (0, 5, 3, 4)), (1, 2), 3,
             "waltz", (0, 32, 40), "oom", "waltz", "melody",
             {"bass": (32, 43, 45), "chords": (0, 48, 21, 45), "lead": (40, 73, 21, 71, 0)},
             ("romantic", "playful", "nostalgic", "melancholic", "warm"), ("1900s", "classical", "retro"),
             "hall", energy=(0.3, 0.7), raise_leading=True),
    StyleDef("chorale", ("Bach chorale", "four-part chorale", "baroque chorale", "hymn"), (60, 100),
             {"4/4": 0.8, "3/4": 0.2}, {"major": 0.5, "minor": 0.5}, (), (1,), 3, "none", (0,),
             "score", "score", "score",
             {"voice1": (73, 68, 40, 56, 19, 52, 71, 0), "voice2": (68, 41, 71, 19, 52, 60, 0),
              "voice3": (71, 42, 60, 57, 19, 52, 0), "voice4": (70, 42, 43, 58, 19, 57, 32),
              "accompaniment": (45, 46, 32, 6)},
             ("peaceful", "melancholic", "warm", "solemn", "hopeful"), ("baroque", "18th century"), "church"),
    StyleDef("folk", ("folk", "folk tune", "celtic folk", "traditional folk", "irish jig"), (84, 150),
             {"4/4": 0.4, "3/4": 0.2, "6/8": 0.4}, {"major": 0.7, "minor": 0.2, "dorian": 0.1}, (), (1,), 3,
             "folk", (0, 40, 8), "oom", "strum", "score",
             {"bass": (32, 33), "chords": (24, 25, 21, 105, 46, 0), "lead": (110, 73, 74, 21, 22, 40, 71, 75)},
             ("playful", "happy", "nostalgic", "warm", "melancholic"), ("traditional", "19th century"),
             "room", energy=(0.3, 0.8)),
)}

assert tuple(DEFS) == STYLES
