"""Rendering a composed clip: FluidSynth -> per-style pedalboard chain -> loudness -> bar-grid trim,
then the cached features (16 kHz mono, log-mel; at a 44.1 kHz render the mid/side FINE mel and the
COARSE mel of `bridge.features`; with `keep_hires`, also the render-rate mono mix, which at a
48 kHz render is the super-resolution stage's training target)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pedalboard as pb
import soxr

from n2m.bridge.features import FINE, MelSpec, coarse_mel, fine_mel, log_mel

from . import theory as th
from .compose import ClipPlan
from .synth import CC, DRUM_CHANNEL, NOTE_OFF, NOTE_ON, Synth, soundfont_by_name

FLAC_RATE = 44100
AUDIO_RATE = 16000
TAIL_SECONDS = 1.5  # rendered past the last bar so releases and reverb exist to be trimmed
FADE_SECONDS = 0.02
PEAK_CEILING = 0.891  # -1 dBFS


@dataclass
class Rendered:
    stereo: np.ndarray  # float32 [2, n] at FLAC_RATE
    mono16k: np.ndarray  # int16 [m] at AUDIO_RATE
    mel: np.ndarray  # float32 [80, frames]
    loudness_db: float
    mono_hires: np.ndarray | None = None  # int16 [k] mono mix at the render rate (keep_hires)
    fine: np.ndarray | None = None  # float32 [2, 192, frames]: FINE log-mel of mid and side (44.1 kHz)
    coarse: np.ndarray | None = None  # float32 [COARSE.n_bins, frames / 2]: COARSE log-mel of the mid


def events_for(parts: list[th.Part], bpm: float, rate: int, n_samples: int
               ) -> tuple[dict[int, tuple[int, int]], list[tuple[int, int, int, int, int]]]:
    programs: dict[int, tuple[int, int]] = {}
    events: list[tuple[int, int, int, int, int]] = []
    spq = 60.0 / bpm * rate  # samples per quarter
    ch = 0
    for part in parts:
        if part.is_drums:
            c = DRUM_CHANNEL
            programs[c] = (128, part.program)
        else:
            if ch == DRUM_CHANNEL:
                ch += 1
            c = ch
            ch += 1
            programs[c] = (0, part.program)
        events.append((0, CC, c, 7, part.volume))
        events.append((0, CC, c, 10, part.pan))
        for n in part.notes:
            on = int(round(n.start * spq))
            if on >= n_samples:
                continue
            off = min(int(round((n.start + n.dur) * spq)), n_samples - 1)
            events.append((on, NOTE_ON, c, int(n.pitch), int(n.vel)))
            events.append((max(off, on + 1), NOTE_OFF, c, int(n.pitch), 0))
    return programs, events


def _chain(plan: ClipPlan, mix: str, rng: np.random.Generator) -> pb.Pedalboard:
    j = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    beat = 60.0 / plan.bpm
    fx: list = [pb.HighpassFilter(cutoff_frequency_hz=j(25, 45))]
    if mix == "club":
        fx += [pb.LowShelfFilter(cutoff_frequency_hz=90, gain_db=j(1, 3)),
               pb.Compressor(threshold_db=-18, ratio=4, attack_ms=5, release_ms=80),
               pb.Reverb(room_size=j(0.2, 0.4), wet_level=j(0.06, 0.12), dry_level=0.9)]
    elif mix == "dusty":
        fx += [pb.LowpassFilter(cutoff_frequency_hz=j(7000, 10000)), pb.Distortion(drive_db=j(2, 6)),
               pb.Compressor(threshold_db=-16, ratio=3, attack_ms=10, release_ms=120),
               pb.Reverb(room_size=j(0.15, 0.3), wet_level=0.08, dry_level=0.92)]
    elif mix == "lofi":
        fx += [pb.LowpassFilter(cutoff_frequency_hz=j(3500, 6000)), pb.Bitcrush(bit_depth=j(11, 14)),
               pb.Chorus(rate_hz=0.3, depth=0.15, mix=0.25),
               pb.Compressor(threshold_db=-18, ratio=3),
               pb.Reverb(room_size=j(0.3, 0.5), wet_level=j(0.12, 0.2), dry_level=0.85)]
    elif mix == "warm_bus":
        fx += [pb.LowShelfFilter(cutoff_frequency_hz=120, gain_db=j(1, 3)),
               pb.Compressor(threshold_db=-16, ratio=2.5, attack_ms=15, release_ms=120),
               pb.Reverb(room_size=j(0.2, 0.35), wet_level=0.1, dry_level=0.9)]
    elif mix in ("rock", "metal"):
        fx += [pb.HighpassFilter(cutoff_frequency_hz=60),
               pb.Distortion(drive_db=j(1, 4) if mix == "rock" else j(3, 7)),
               pb.Compressor(threshold_db=-18, ratio=4 if mix == "metal" else 3, attack_ms=8, release_ms=100),
               pb.HighShelfFilter(cutoff_frequency_hz=6000, gain_db=j(0, 2)),
               pb.Reverb(room_size=j(0.25, 0.45), wet_level=j(0.08, 0.15), dry_level=0.9)]
    elif mix == "pop":
        fx += [pb.HighShelfFilter(cutoff_frequency_hz=8000, gain_db=j(1, 3)),
               pb.Compressor(threshold_db=-16, ratio=3, attack_ms=10, release_ms=100),
               pb.Reverb(room_size=j(0.3, 0.5), wet_level=j(0.1, 0.18), dry_level=0.88)]
    elif mix == "jazz":
        fx += [pb.Compressor(threshold_db=-20, ratio=2, attack_ms=20, release_ms=200),
               pb.Reverb(room_size=j(0.35, 0.6), wet_level=j(0.12, 0.2), dry_level=0.88)]
    elif mix == "dub":
        fx += [pb.Delay(delay_seconds=beat * 0.75, feedback=j(0.25, 0.4), mix=j(0.1, 0.2)),
               pb.Compressor(threshold_db=-16, ratio=3),
               pb.Reverb(room_size=j(0.4, 0.6), wet_level=0.15, dry_level=0.88)]
    elif mix == "ambient":
        fx += [pb.Chorus(rate_hz=0.2, depth=0.3, mix=0.3),
               pb.Delay(delay_seconds=beat * 1.5, feedback=j(0.3, 0.5), mix=j(0.15, 0.3)),
               pb.Reverb(room_size=j(0.8, 0.95), wet_level=j(0.3, 0.45), dry_level=0.7)]
    elif mix in ("hall", "church"):
        fx += [pb.Compressor(threshold_db=-20, ratio=2, attack_ms=30, release_ms=250),
               pb.Reverb(room_size=j(0.7, 0.9) if mix == "church" else j(0.55, 0.8),
                         wet_level=j(0.2, 0.35), dry_level=0.8)]
    elif mix == "chip":
        fx += [pb.Bitcrush(bit_depth=j(9, 12)), pb.Compressor(threshold_db=-14, ratio=2),
               pb.Reverb(room_size=0.1, wet_level=0.04, dry_level=0.95)]
    else:  # room
        fx += [pb.Compressor(threshold_db=-18, ratio=2),
               pb.Reverb(room_size=j(0.25, 0.45), wet_level=j(0.1, 0.2), dry_level=0.88)]
    return pb.Pedalboard(fx)


LOUDNESS_TARGET = {"club": -11.0, "metal": -11.0, "rock": -12.0, "pop": -12.0, "dusty": -13.0,
                   "chip": -13.0, "warm_bus": -13.0, "lofi": -15.0, "dub": -14.0, "jazz": -16.0,
                   "room": -16.0, "hall": -17.0, "church": -18.0, "ambient": -18.0}


def loudness_db(x: np.ndarray, rate: int) -> float:
    """Gated loudness in the spirit of BS.1770 (K-weighting approximated by pedalboard filters),
    of the mono sum: 400 ms blocks with 75 % overlap, absolute gate -70, relative gate -10."""
    mono = np.ascontiguousarray(x.mean(axis=0) if x.ndim == 2 else x, dtype=np.float32)[None, :]
    kw = pb.Pedalboard([pb.HighShelfFilter(cutoff_frequency_hz=1500, gain_db=4.0),
                        pb.HighpassFilter(cutoff_frequency_hz=38)])
    y = kw(mono, rate)[0]
    sub = int(0.1 * rate)
    n = y.shape[0] // sub
    if n < 4:
        ms = np.array([float(np.mean(y.astype(np.float64) ** 2))])
    else:
        e = (y[: n * sub].reshape(n, sub).astype(np.float64) ** 2).sum(axis=1)
        ms = (e[:-3] + e[1:-2] + e[2:-1] + e[3:]) / (4 * sub)
    lk = -0.691 + 10 * np.log10(np.maximum(ms, 1e-12))
    gated = ms[lk > -70]
    if gated.size == 0:
        return -120.0
    rel = -0.691 + 10 * np.log10(gated.mean()) - 10
    gated2 = gated[(-0.691 + 10 * np.log10(gated)) > rel]
    return float(-0.691 + 10 * np.log10(max(gated2.mean() if gated2.size else gated.mean(), 1e-12)))


def render_clip(plan: ClipPlan, parts: list[th.Part], synth: Synth, mix: str,
                spec: MelSpec = MelSpec(), rate: int = FLAC_RATE, keep_hires: bool = False) -> Rendered:
    """`synth` must run at `rate` (the render, FLAC and chain rate)."""
    if synth.sample_rate != rate:
        raise ValueError(f"the synth runs at {synth.sample_rate} Hz, the render at {rate} Hz")
    n = int(round(plan.duration * rate))
    n_tail = n + int(TAIL_SECONDS * rate)
    programs, events = events_for(parts, plan.bpm, rate, n)
    if plan.drum_soundfont is not None and DRUM_CHANNEL in programs:
        programs[DRUM_CHANNEL] = (0, 0, synth.load_kit(soundfont_by_name(plan.drum_soundfont)))
    dry = synth.render(programs, events, n_tail)
    rng = np.random.default_rng([plan.seed, 5])
    wet = _chain(plan, mix, rng)(dry, rate)
    # bar grid: keep exactly the clip's bars, fade the cut tail
    out = np.ascontiguousarray(wet[:, :n], dtype=np.float32)
    fade = int(FADE_SECONDS * rate)
    out[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    out -= out.mean(axis=1, keepdims=True)  # no DC
    # loudness, then a limiter with headroom, then a hard ceiling (the limiter can overshoot)
    target = LOUDNESS_TARGET.get(mix, -14.0) + float(rng.uniform(-1.5, 1.5))
    lufs = loudness_db(out, rate)
    if lufs > -80:
        out *= np.float32(10 ** ((target - lufs) / 20))
    out = pb.Limiter(threshold_db=-2.0, release_ms=60)(out, rate)
    peak = float(np.abs(out).max())
    if peak > PEAK_CEILING:
        out *= np.float32(PEAK_CEILING / peak)
    out -= out.mean(axis=1, keepdims=True)  # the limiter and drive can leave a small offset
    out[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    mono = out.mean(axis=0)
    m = int(round(plan.duration * AUDIO_RATE))
    low = soxr.resample(mono, rate, AUDIO_RATE, quality="HQ")[:m]
    if low.shape[0] < m:
        low = np.pad(low, (0, m - low.shape[0]))
    low_peak = float(np.abs(low).max())
    if low_peak > PEAK_CEILING:  # resampling can overshoot between samples: same gain for both
        g = np.float32(PEAK_CEILING / low_peak)
        low *= g
        out *= g
    i16 = np.clip(np.round(low * 32767.0), -32768, 32767).astype(np.int16)
    mel = log_mel(i16.astype(np.float32) / 32768.0, spec)
    hires = fine = coarse = None
    if keep_hires:  # the same mono mix, at the render rate, after the same gains
        hires = np.clip(np.round(out.mean(axis=0) * 32767.0), -32768, 32767).astype(np.int16)
    if rate == FINE.sample_rate:
        fine = fine_mel(out)
        coarse = coarse_mel(fine[0])
    return Rendered(stereo=out.astype(np.float32), mono16k=i16, mel=mel,
                    loudness_db=loudness_db(low[None, :], AUDIO_RATE), mono_hires=hires, fine=fine, coarse=coarse)
