"""FluidSynth through its C library (Debian `libfluidsynth3`, pulled in by `fluidsynth`).

A small ctypes binding: the soundfont is loaded once per process and events are rendered straight
into float32 stereo buffers at the target rate, which is faster than the CLI (no MIDI file, no
re-loading the soundfont, no 4.5 s of appended tail). FluidSynth's own reverb and chorus are off:
the mix chain adds its own, per style.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class SynthError(RuntimeError):
    """FluidSynth or a soundfont is missing or unusable; the message names the Debian package."""


@dataclass(frozen=True)
class SoundFont:
    name: str
    path: str
    package: str  # the Debian package that installs it
    weight: float  # how often the corpus uses it (among the fonts a style may use)
    # an optional font is used where it fits when installed; the build goes on without it
    optional: bool = False
    styles: tuple[str, ...] = ()  # the only styles that use it (empty: every style)
    kit: bool = False  # one drum kit (bank 0, program 0) played on the drum channel beside a GM font


SOUNDFONTS: tuple[SoundFont, ...] = (
    SoundFont("FluidR3_GM", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm", 0.45),
    SoundFont("MuseScore_General", "/usr/share/sounds/sf3/MuseScore_General.sf3",
              "musescore-general-soundfont", 0.35),
    SoundFont("TimGM6mb", "/usr/share/sounds/sf2/TimGM6mb.sf2", "timgm6mb-soundfont", 0.20),
    # a complete GM set of OPL3 FM patches (one drum kit): the chip styles' own sound
    SoundFont("OPL3_FM", "/usr/share/sounds/sf2/OPL-3_FM_128M.sf2", "opl3-soundfont", 1.0,
              optional=True, styles=("chiptune",)),
    # multi-sampled acoustic kits (GM drum keys 36-61)
    SoundFont("AVL_Black_Pearl", "/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2", "avldrums.lv2-soundfont",
              0.5, optional=True, kit=True),
    SoundFont("AVL_Red_Zeppelin", "/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2", "avldrums.lv2-soundfont",
              0.5, optional=True, kit=True),
)
FLUIDSYNTH_PACKAGE = "fluidsynth"
DRUM_CHANNEL = 9


def soundfont_by_name(name: str) -> SoundFont:
    for sf in SOUNDFONTS:
        if sf.name == name:
            return sf
    raise SynthError(f"unknown soundfont {name!r}: one of {', '.join(s.name for s in SOUNDFONTS)}")


def missing_optional(names: list[str] | None = None) -> str | None:
    """One line naming the optional soundfonts that are not installed (None when all are), for
    builds that use every font (`names` None)."""
    if names:
        return None
    gone = [sf for sf in SOUNDFONTS if sf.optional and not os.path.isfile(sf.path)]
    if not gone:
        return None
    pk = " ".join(sorted({sf.package for sf in gone}))
    return (f"optional soundfonts not installed, building without them: {', '.join(sf.name for sf in gone)} "
            f"(sudo apt-get install {pk})")


def require_soundfonts(names: list[str] | None = None) -> list[SoundFont]:
    """The soundfonts to use, or SynthError naming the Debian packages to install. Without `names`,
    every installed font; a missing optional one is left out (see `missing_optional`)."""
    wanted = [soundfont_by_name(n) for n in names] if names else list(SOUNDFONTS)
    missing = [sf for sf in wanted if not os.path.isfile(sf.path)]
    if names and missing:
        raise SynthError("soundfont not found: " + "; ".join(
            f"{sf.path} (install the Debian package `{sf.package}`: sudo apt-get install {sf.package})"
            for sf in missing))
    have = [sf for sf in wanted if sf not in missing]
    general = [sf for sf in have if not sf.optional]
    if len(general) < 2:
        missing = [sf for sf in missing if not sf.optional]
        pk = " ".join(sf.package for sf in missing)
        raise SynthError(
            f"the corpus needs at least two general soundfonts for timbre variety, found {len(general)}: "
            f"install the Debian packages: sudo apt-get install {pk}")
    return have


def _find_library() -> str:
    override = os.environ.get("N2M_LIBFLUIDSYNTH")
    if override is not None:
        return override
    name = ctypes.util.find_library("fluidsynth")
    if name:
        return name
    for cand in ("libfluidsynth.so.3", "/usr/lib/x86_64-linux-gnu/libfluidsynth.so.3",
                 "/usr/lib/aarch64-linux-gnu/libfluidsynth.so.3"):
        if Path(cand).exists() or "/" not in cand:
            return cand
    return "libfluidsynth.so.3"


def load_library() -> ctypes.CDLL:
    """libfluidsynth, or SynthError naming the Debian package."""
    path = _find_library()
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise SynthError(
            f"FluidSynth's library ({path}) could not be loaded ({exc}): install the Debian package "
            f"`{FLUIDSYNTH_PACKAGE}` (sudo apt-get install {FLUIDSYNTH_PACKAGE})") from exc
    vp, ci, cd, cs = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_char_p
    sigs = {
        "new_fluid_settings": (vp, []),
        "delete_fluid_settings": (None, [vp]),
        "fluid_settings_setnum": (ci, [vp, cs, cd]),
        "fluid_settings_setint": (ci, [vp, cs, ci]),
        "new_fluid_synth": (vp, [vp]),
        "delete_fluid_synth": (None, [vp]),
        "fluid_synth_sfload": (ci, [vp, cs, ci]),
        "fluid_synth_program_select": (ci, [vp, ci, ci, ci, ci]),
        "fluid_synth_noteon": (ci, [vp, ci, ci, ci]),
        "fluid_synth_noteoff": (ci, [vp, ci, ci]),
        "fluid_synth_cc": (ci, [vp, ci, ci, ci]),
        "fluid_synth_system_reset": (ci, [vp]),
        "fluid_synth_write_float": (ci, [vp, ci, vp, ci, ci, vp, ci, ci]),
        "fluid_set_log_function": (vp, [ci, vp, vp]),
        "fluid_synth_set_interp_method": (ci, [vp, ci, ci]),
    }
    for fname, (res, args) in sigs.items():
        fn = getattr(lib, fname)
        fn.restype, fn.argtypes = res, args
    for level in (1, 2, 3, 4):  # errors, warnings, info, debug: our own errors say what matters
        lib.fluid_set_log_function(level, None, None)
    return lib


# Event kinds: (sample, kind, channel, a, b)
NOTE_ON, NOTE_OFF, CC = 0, 1, 2
BLOCK = 64  # FluidSynth's internal block


class Synth:
    """One FluidSynth instance with one soundfont loaded. Not thread-safe; one per process."""

    def __init__(self, soundfont: SoundFont, sample_rate: int = 44100, gain: float = 0.5) -> None:
        if not os.path.isfile(soundfont.path):
            raise SynthError(f"soundfont not found: {soundfont.path} (install the Debian package "
                             f"`{soundfont.package}`: sudo apt-get install {soundfont.package})")
        self.lib = load_library()
        self.soundfont = soundfont
        self.sample_rate = sample_rate
        lib = self.lib
        self._settings = lib.new_fluid_settings()
        lib.fluid_settings_setnum(self._settings, b"synth.sample-rate", float(sample_rate))
        lib.fluid_settings_setnum(self._settings, b"synth.gain", float(gain))
        lib.fluid_settings_setint(self._settings, b"synth.reverb.active", 0)
        lib.fluid_settings_setint(self._settings, b"synth.chorus.active", 0)
        lib.fluid_settings_setint(self._settings, b"synth.polyphony", 256)
        lib.fluid_settings_setint(self._settings, b"synth.cpu-cores", 1)
        self._synth = lib.new_fluid_synth(self._settings)
        if not self._synth:
            raise SynthError("FluidSynth could not create a synthesizer")
        lib.fluid_synth_set_interp_method(self._synth, -1, 1)  # linear: ~2x faster than 4th order
        self._kits: dict[str, int] = {}
        self.sfid = lib.fluid_synth_sfload(self._synth, soundfont.path.encode(), 1)
        if self.sfid < 0:
            raise SynthError(f"FluidSynth could not load {soundfont.path}: reinstall the Debian "
                             f"package `{soundfont.package}`")

    def close(self) -> None:
        if self._synth:
            self.lib.delete_fluid_synth(self._synth)
            self.lib.delete_fluid_settings(self._settings)
            self._synth = None

    def __enter__(self) -> Synth:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _silence(self) -> None:
        """Kill every voice at once (All Sound Off has no release), reset controllers, flush.

        (fluid_synth_system_reset is not used: after it, voices killed by All Sound Off sound again.)
        """
        lib, syn = self.lib, self._synth
        for ch in range(16):
            lib.fluid_synth_cc(syn, ch, 120, 0)
            lib.fluid_synth_cc(syn, ch, 121, 0)
        scratch = np.zeros(4 * BLOCK, dtype=np.float32)
        p = scratch.ctypes.data
        lib.fluid_synth_write_float(syn, 2 * BLOCK, p, 0, 1, p, 2 * BLOCK, 1)

    def select(self, channel: int, bank: int, program: int, sfid: int | None = None) -> bool:
        """Select a preset (of the main font, or of the loaded font `sfid`); False if it lacks it."""
        sfid = self.sfid if sfid is None else sfid
        return self.lib.fluid_synth_program_select(self._synth, channel, sfid, bank, program) == 0

    def load_kit(self, kit: SoundFont) -> int:
        """Load a drum-kit font beside the main one (once); returns its font id for `render`."""
        if kit.name not in self._kits:
            if not os.path.isfile(kit.path):
                raise SynthError(f"soundfont not found: {kit.path} (install the Debian package "
                                 f"`{kit.package}`: sudo apt-get install {kit.package})")
            sfid = self.lib.fluid_synth_sfload(self._synth, kit.path.encode(), 0)
            if sfid < 0:
                raise SynthError(f"FluidSynth could not load {kit.path}: reinstall `{kit.package}`")
            self._kits[kit.name] = sfid
        return self._kits[kit.name]

    def _select_all(self, programs: dict[int, tuple[int, ...]]) -> None:
        for ch, (bank, prog, *font) in programs.items():
            sfid = font[0] if font else None
            if self.select(ch, bank, prog, sfid):
                continue
            if bank == 128 and sfid is None and self.select(ch, 128, 0):  # a font with one kit
                continue
            raise SynthError(f"{self.soundfont.name} has no preset bank {bank} program {prog}")

    def render(self, programs: dict[int, tuple[int, ...]], events: list[tuple[int, int, int, int, int]],
               n_samples: int) -> np.ndarray:
        """float32 [2, n_samples]: the events (sample, kind, channel, a, b) from a reset synth.

        programs maps channel -> (bank, program) of the main font, or (bank, program, font id) of
        a font from `load_kit`; a missing drum kit falls back to the font's kit 0; events past
        n_samples are dropped.
        """
        lib, syn = self.lib, self._synth
        self._silence()
        # FluidSynth computes 64-sample blocks and applies events at block boundaries; keeping
        # every render a whole number of blocks keeps renders independent and deterministic.
        want = n_samples
        n_samples = -(-n_samples // BLOCK) * BLOCK
        self._select_all(programs)
        left = np.zeros(n_samples, dtype=np.float32)
        right = np.zeros(n_samples, dtype=np.float32)
        lp, rp = left.ctypes.data, right.ctypes.data
        pos = 0
        for t, kind, ch, a, b in sorted(events, key=lambda e: (e[0], -e[1])):
            t = min(max(t, 0) // BLOCK * BLOCK, n_samples)
            if t > pos:
                lib.fluid_synth_write_float(syn, t - pos, lp, pos, 1, rp, pos, 1)
                pos = t
            if pos >= n_samples:
                break
            if kind == NOTE_ON:
                lib.fluid_synth_noteon(syn, ch, a, b)
            elif kind == NOTE_OFF:
                lib.fluid_synth_noteoff(syn, ch, a)
            else:
                lib.fluid_synth_cc(syn, ch, a, b)
        if pos < n_samples:
            lib.fluid_synth_write_float(syn, n_samples - pos, lp, pos, 1, rp, pos, 1)
        return np.stack([left[:want], right[:want]])
