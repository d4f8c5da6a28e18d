"""Controls parsed from prompt text, explicit overrides, and refusal of impossible values."""

import pytest

from n2m.bridge.controls import (
    MODES,
    TONICS,
    ControlError,
    Controls,
    parse_controls,
    relative_tonic,
    resolve,
    tonic_index,
)


@pytest.mark.parametrize(
    "text, expect",
    [
        ("dusty boom-bap beat with rhodes chords, 88 bpm, A minor, 8 bars",
         dict(bpm=88.0, key="A", mode="minor", bars=8)),
        ("techno 128bpm Bbm 16 bars", dict(bpm=128.0, key="Bb", mode="minor", bars=16)),
        ("waltz in F# major", dict(key="F#", mode="major", meter="3/4")),
        ("lofi in the key of Eb dorian, 20 seconds", dict(key="Eb", mode="dorian", seconds=20.0)),
        ("jig in 6/8, tempo 120", dict(meter="6/8", bpm=120.0)),
        ("bossa nova in D flat major", dict(key="C#", mode="major")),
        ("just some chill music", dict()),
    ],
)
def test_parse_controls_from_text(text, expect):
    got = parse_controls(text).as_dict()
    for field, value in got.items():
        assert value == expect.get(field), (text, field, value)


def test_explicit_controls_override_text_and_length_is_replaced_whole():
    c = resolve("house, 124 bpm, 8 bars", Controls(bpm=126, seconds=12))
    assert c.bpm == 126.0 and c.seconds == 12.0 and c.bars is None


@pytest.mark.parametrize(
    "controls, needle",
    [
        (Controls(bpm=1000), "out of range"),  # absurd tempo
        (Controls(bpm=float("nan")), "number"),
        (Controls(seconds=3600), "out of range"),  # an hour-long clip
        (Controls(seconds=0.1), "out of range"),
        (Controls(bars=0), "whole number"),
        (Controls(bars=2.5), "whole number"),
        (Controls(bars=64, bpm=60), "fewer bars"),  # 256 s of music
        (Controls(key="H"), "unknown key"),
        (Controls(mode="locrian-ish"), "unknown mode"),
        (Controls(meter="7/8"), "unsupported meter"),
        (Controls(bars=4, seconds=10), "not both"),
    ],
)
def test_impossible_controls_are_refused_with_a_reason(controls, needle):
    with pytest.raises(ControlError, match=needle):
        controls.validated()


def test_duration_and_indices():
    c = Controls(bpm=120, bars=8, meter="3/4", key="A", mode="minor").validated()
    assert c.duration() == pytest.approx(12.0)
    assert c.indices() == {"key": 1 + 9, "mode": 1 + MODES.index("minor"), "meter": 2}
    assert Controls().indices() == {"key": 0, "mode": 0, "meter": 0}


def test_relative_keys():
    assert TONICS[relative_tonic(tonic_index("A"), "minor")] == "C"
    assert TONICS[relative_tonic(tonic_index("Eb"), "major")] == "C"
    assert tonic_index("Gb") == tonic_index("F#") == 6
