"""The tempo the product reads (bridge.tempo) on real renders whose syncopation repeats at 1.5
beats, and the stretch of a 6/8 clip measured at its dotted-quarter beat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from n2m.bridge.pipeline import PipelineOptions, process_clip
from n2m.bridge.tempo import estimate_tempo, stretch_ratio
from n2m.exporter.corpus.build import BuildConfig, build
from n2m.exporter.corpus.reader import CorpusReader
from n2m.exporter.metrics.adherence import tempo_scores

from tests.bridge.test_pipeline import Clip


@pytest.mark.parametrize("seed", [1, 3, 14])
def test_trap_and_drum_and_bass_renders_read_at_their_beat(tmp_path: Path, seed: int) -> None:
    """Trap (3-3-2 kicks) and drum and bass renders from the corpus builder: their onsets repeat
    strongly every 1.5 beats, which the autocorrelation's peak alone reads as 2/3 of the tempo on
    these seeds; the bar's support must bring each back to the beat (octaves allowed)."""
    build(BuildConfig(out=tmp_path, hours=0.02, seed=seed, jobs=1, shard_size=2,
                      soundfonts=("FluidR3_GM", "TimGM6mb"), styles=("trap", "drum_and_bass"), max_shards=2,
                      quiet=True))
    r = CorpusReader(tmp_path)
    clips = r.clips()
    assert clips
    for c in clips:
        measured, _ = estimate_tempo(r.audio16k(c)[: 10 * 16000], 16000)
        print(f"{c['style']} {c['meter']} labelled {c['bpm']} bpm, read {measured:.1f}")
        assert tempo_scores(float(c["bpm"]), measured, c["meter"])["octave"], (c["style"], c["bpm"], measured)


def test_a_dotted_quarter_reading_stretches_only_in_six_eight() -> None:
    """80 bpm read from a clip asked for at 116 quarter notes a minute: in 6/8 that is the dotted
    quarter of 120, stretched by 116/120; in 4/4 it is too far from any octave to stretch."""
    ratio, note = stretch_ratio(80.0, 116.0, 0.08, "6/8")
    assert abs(ratio - 116.0 / 120.0) < 1e-9, note
    ratio, note = stretch_ratio(80.0, 116.0, 0.08, "4/4")
    assert ratio == 1.0 and "too far" in note
    ratio, _ = stretch_ratio(240.0, 116.0, 0.08, "6/8")  # an octave of the quarter note still counts
    assert abs(ratio - 116.0 / 120.0) < 1e-9


def six_eight(quarter_bpm: float, seconds: float, sr: int = 16000) -> np.ndarray:
    """Noise bursts on the dotted-quarter beats of 6/8 (loud on the bar's first), quiet on the other eighths."""
    rng = np.random.default_rng(3)
    x = np.zeros(int(seconds * sr))
    eighth = 30.0 / quarter_bpm
    for j in range(int(seconds / eighth)):
        i, n = int(j * eighth * sr), int(0.05 * sr)
        gain = 1.0 if j % 6 == 0 else 0.6 if j % 3 == 0 else 0.05
        seg = rng.standard_normal(min(n, len(x) - i)) * gain
        x[i:i + len(seg)] += seg * np.exp(-np.arange(len(seg)) / (0.01 * sr))
    return (0.3 * x).astype(np.float32)


def test_a_six_eight_clip_is_stretched_to_the_request() -> None:
    """A 6/8 clip at 120 quarter notes a minute, asked for at 116: stretched by 116/120 whichever
    pulse (dotted quarter or an octave of the quarter) the tempo reads."""
    clip = Clip(six_eight(120.0, 12.0))
    measured, _ = estimate_tempo(clip.audio, clip.sample_rate)
    out = process_clip(clip, PipelineOptions(bpm=116.0, meter="6/8", bars=4))
    print(f"read {measured:.1f} bpm; {out.notes[0]}")
    assert abs(out.stretch_ratio - 116.0 / 120.0) < 0.005, out.notes


SHIPPED = Path(__file__).resolve().parents[2] / "bridge" / "models" / "default"


@pytest.mark.parametrize("prompt,bpm,seed", [
    ("Let's hear an idea of pounding techno, at 132bpm, in B dorian for a game menu", 132.0, 5),
    ("Lay down an idea of bleepy 8-bit with square lead, 8 bars, at 145bpm under a vocal", 145.0, 84),
])
def test_shipped_clips_whose_timing_drifts_read_at_their_beat(prompt: str, bpm: float, seed: int) -> None:
    """Two 10 s clips of the shipped model as `n2m eval` renders them (its tuning set): their beat
    wanders by a lag or two, so the bar's autocorrelation peak sits a few lags off four times the
    beat's; looked for within 2 lags only, the 1.5-beat pulse of the off-beat eighths won."""
    from n2m.bridge.controls import parse_controls
    from n2m.exporter.eval_models import EvalOptions, OnnxCascade

    ctl = parse_controls(prompt).validated()
    assert ctl.bpm == bpm
    clip = OnnxCascade(SHIPPED, EvalOptions(), threads=2).render(prompt, ctl, 10.0, seed)
    measured, _ = estimate_tempo(np.nan_to_num(clip.audio16k), 16000)
    print(f"asked {bpm} bpm, read {measured:.1f}")
    assert tempo_scores(bpm, measured, ctl.meter)["octave"], measured
