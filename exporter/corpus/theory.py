"""Music theory for the composer: scales, diatonic chords, voicings, General MIDI names."""

from __future__ import annotations

from dataclasses import dataclass, field

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}

GM_NAMES: tuple[str, ...] = (
    "acoustic grand piano", "bright acoustic piano", "electric grand piano", "honky-tonk piano",
    "electric piano 1", "electric piano 2", "harpsichord", "clavinet", "celesta", "glockenspiel",
    "music box", "vibraphone", "marimba", "xylophone", "tubular bells", "dulcimer", "drawbar organ",
    "percussive organ", "rock organ", "church organ", "reed organ", "accordion", "harmonica",
    "tango accordion", "nylon string guitar", "steel string guitar", "jazz guitar",
    "clean electric guitar", "muted electric guitar", "overdriven guitar", "distortion guitar",
    "guitar harmonics", "acoustic bass", "fingered bass", "picked bass", "fretless bass",
    "slap bass 1", "slap bass 2", "synth bass 1", "synth bass 2", "violin", "viola", "cello",
    "contrabass", "tremolo strings", "pizzicato strings", "orchestral harp", "timpani",
    "string ensemble 1", "string ensemble 2", "synth strings 1", "synth strings 2", "choir aahs",
    "voice oohs", "synth voice", "orchestra hit", "trumpet", "trombone", "tuba", "muted trumpet",
    "french horn", "brass section", "synth brass 1", "synth brass 2", "soprano sax", "alto sax",
    "tenor sax", "baritone sax", "oboe", "english horn", "bassoon", "clarinet", "piccolo", "flute",
    "recorder", "pan flute", "blown bottle", "shakuhachi", "whistle", "ocarina", "square lead",
    "sawtooth lead", "calliope lead", "chiff lead", "charang lead", "voice lead", "fifths lead",
    "bass and lead", "new age pad", "warm pad", "polysynth pad", "choir pad", "bowed pad",
    "metallic pad", "halo pad", "sweep pad", "rain fx", "soundtrack fx", "crystal fx",
    "atmosphere fx", "brightness fx", "goblins fx", "echoes fx", "sci-fi fx", "sitar", "banjo",
    "shamisen", "koto", "kalimba", "bagpipe", "fiddle", "shanai", "tinkle bell", "agogo",
    "steel drums", "woodblock", "taiko drum", "melodic tom", "synth drum", "reverse cymbal",
    "guitar fret noise", "breath noise", "seashore", "bird tweet", "telephone ring", "helicopter",
    "applause", "gunshot",
)

# What producers call them in captions (several words where there are synonyms).
FRIENDLY: dict[int, tuple[str, ...]] = {
    0: ("piano", "grand piano", "acoustic piano"), 1: ("bright piano", "piano"),
    2: ("electric grand", "CP-70 style piano"), 3: ("honky-tonk piano", "saloon piano"),
    4: ("rhodes", "electric piano", "Rhodes keys"), 5: ("DX electric piano", "digital electric piano", "electric piano"),
    6: ("harpsichord",), 7: ("clavinet", "clav"), 8: ("celesta",), 9: ("glockenspiel", "glock"),
    10: ("music box",), 11: ("vibraphone", "vibes"), 12: ("marimba",), 13: ("xylophone",),
    16: ("organ", "drawbar organ", "Hammond organ"), 17: ("percussive organ", "organ"),
    18: ("rock organ", "organ"), 19: ("church organ", "pipe organ"), 21: ("accordion",),
    22: ("harmonica", "blues harp"), 24: ("nylon guitar", "classical guitar", "acoustic guitar"),
    25: ("acoustic guitar", "steel-string guitar"), 26: ("jazz guitar", "hollow-body guitar"),
    27: ("clean guitar", "clean electric guitar"), 28: ("muted guitar", "palm-muted guitar"),
    29: ("overdriven guitar", "crunchy guitar"), 30: ("distorted guitar", "heavy guitar", "high-gain guitar"),
    32: ("upright bass", "double bass", "acoustic bass"), 33: ("bass guitar", "electric bass", "finger bass"),
    34: ("picked bass", "electric bass"), 35: ("fretless bass",), 36: ("slap bass",),
    37: ("slap bass",), 38: ("synth bass", "analog bass"), 39: ("synth bass", "sub bass"),
    40: ("violin",), 41: ("viola",), 42: ("cello",), 43: ("contrabass",), 44: ("tremolo strings",),
    45: ("pizzicato strings", "pizz strings"), 46: ("harp",), 47: ("timpani",),
    48: ("strings", "string ensemble", "string section"), 49: ("slow strings", "strings"),
    50: ("synth strings",), 51: ("synth strings",), 52: ("choir", "vocal aahs"), 53: ("voice pad", "oohs"),
    56: ("trumpet",), 57: ("trombone",), 58: ("tuba",), 59: ("muted trumpet",), 60: ("french horn", "horn"),
    61: ("brass section", "horns", "brass"), 62: ("synth brass",), 63: ("synth brass",),
    64: ("soprano sax",), 65: ("alto sax", "saxophone"), 66: ("tenor sax", "saxophone"),
    67: ("baritone sax",), 68: ("oboe",), 70: ("bassoon",), 71: ("clarinet",), 72: ("piccolo",),
    73: ("flute",), 74: ("recorder",), 75: ("pan flute",), 79: ("ocarina",),
    80: ("square lead", "chiptune square", "square wave lead"), 81: ("saw lead", "sawtooth synth", "lead synth"),
    82: ("calliope lead",), 84: ("charang lead",), 87: ("bass and lead synth",),
    88: ("new age pad", "pad"), 89: ("warm pad", "pad", "analog pad"), 90: ("polysynth", "poly synth"),
    91: ("choir pad", "vocal pad"), 92: ("bowed pad", "pad"), 94: ("halo pad", "pad"), 95: ("sweep pad", "pad"),
    99: ("atmosphere pad", "atmospheric synth"), 100: ("bright synth",), 104: ("sitar",), 105: ("banjo",),
    108: ("kalimba",), 110: ("fiddle",), 114: ("steel drums", "steel pan"),
}

DRUM_KITS: dict[int, str] = {
    0: "standard kit", 8: "room kit", 16: "power kit", 24: "electronic kit", 25: "808 kit",
    32: "jazz kit", 40: "brush kit", 48: "orchestral percussion",
}

ACOUSTIC_KIT = "acoustic kit"  # the label of a multi-sampled kit font's drums (synth.SoundFont.kit)


def kit_name(program: int | None, kit_font: str | None = None) -> str:
    """The caption label of a clip's drums: its kit font's, or its GM kit program's."""
    return ACOUSTIC_KIT if kit_font else DRUM_KITS.get(program, "drums")


# General MIDI percussion keys
KICK, RIM, SNARE, CLAP, SNARE2, LTOM, CHH, PHH, MTOM, OHH, HTOM = 36, 37, 38, 39, 40, 45, 42, 44, 47, 46, 50
CRASH, RIDE, BELL, TAMB, COWBELL, SHAKER, CLAVES, CONGA_H, CONGA_L, BONGO_H = 49, 51, 53, 54, 56, 70, 75, 62, 64, 60


def friendly(program: int) -> str:
    names = FRIENDLY.get(program)
    return names[0] if names else GM_NAMES[program]


def scale_pitch(tonic: int, mode: str, degree: int, octave: int) -> int:
    """MIDI pitch of a scale degree (0-based, may exceed 6 or be negative) in an octave (C4 = 60)."""
    sc = SCALES[mode]
    o, d = divmod(degree, 7)
    return 12 * (octave + 1) + tonic + sc[d] + 12 * o


def diatonic_chord(tonic: int, mode: str, degree: int, size: int = 3, octave: int = 4,
                   raise_leading: bool = False) -> list[int]:
    """Close-position diatonic chord (triad or seventh) on a scale degree, as MIDI pitches."""
    notes = [scale_pitch(tonic, mode, degree + 2 * i, octave) for i in range(size)]
    if raise_leading and mode == "minor" and degree % 7 == 4:  # harmonic minor V
        notes = [n + 1 if (n - tonic) % 12 == 10 else n for n in notes]
    return notes


def voice_lead(prev: list[int] | None, chord: list[int], low: int = 52, high: int = 76) -> list[int]:
    """The inversion of `chord` (pitch classes kept) closest to the previous voicing, within a range."""
    pcs = sorted({p % 12 for p in chord}, key=lambda pc: [p % 12 for p in chord].index(pc))
    candidates = []
    for base in range(low, high - 6):
        v = []
        for pc in pcs:
            p = base + ((pc - base) % 12)
            v.append(p)
        v.sort()
        if v[-1] <= high:
            candidates.append(v)
    if not candidates:
        return sorted(chord)
    if prev is None:
        mid = (low + high) / 2
        return min(candidates, key=lambda v: abs(sum(v) / len(v) - mid))
    pm = sum(prev) / len(prev)
    return min(candidates, key=lambda v: abs(sum(v) / len(v) - pm) + 0.1 * (v[-1] - v[0]))


@dataclass
class Note:
    start: float  # quarter notes from the clip start
    dur: float  # quarter notes
    pitch: int
    vel: int


@dataclass
class Part:
    role: str  # drums, bass, chords, lead, pad, arp, counter
    program: int  # GM program (for drums: the kit number, bank 128)
    notes: list[Note] = field(default_factory=list)
    pan: int = 64
    volume: int = 100
    is_drums: bool = False
