"""The one request type: options from the CLI, OSC and the panel validated with one set of limits."""

from __future__ import annotations

import json

import pytest

from n2m.bridge.controls import Controls
from n2m.bridge.pipeline import PipelineOptions
from n2m.bridge.request import (
    MAX_STEPS,
    MAX_VARIATIONS,
    SEED_MAX,
    Request,
    RequestError,
    from_options,
    parse_key,
)


def test_strings_and_numbers_give_the_same_request() -> None:
    """OSC sends strings, the CLI and the panel numbers."""
    a = from_options({"prompt": " boom-bap ", "bpm": "88", "key": "Am", "bars": "8", "seed": "7",
                      "variations": "2", "steps": "30", "guidance": "3.5", "loop": "1", "format": "flac"})
    b = from_options({"prompt": "boom-bap", "bpm": 88.0, "key": "A", "mode": "minor", "bars": 8, "seed": 7,
                      "variations": 2, "steps": 30, "guidance": 3.5, "loop": True, "format": "flac"})
    assert a == b
    assert a.controls == Controls(bpm=88.0, key="A", mode="minor", bars=8)
    assert (a.output.bpm, a.output.bars, a.output.loop, a.output.format) == (88.0, 8, True, "flac")
    assert not a.output.loop_crossfade
    c = from_options({"prompt": "boom-bap", "loop": "1", "loop_crossfade": "1"})
    assert c.output.loop and c.output.loop_crossfade


def test_prompt_text_then_options_then_the_song() -> None:
    r = from_options({"prompt": "waltz in F# minor, 92 bpm", "bpm": 100}, song=Controls(bpm=120.0, meter="6/8"))
    assert r.controls.bpm == 100.0 and r.controls.key == "F#" and r.controls.meter == "3/4"
    r = from_options({"prompt": "ambient pad"}, song=Controls(bpm=120.0, meter="6/8"))
    assert (r.controls.bpm, r.controls.meter) == (120.0, "6/8")


@pytest.mark.parametrize(("opts", "why"), [
    ({"prompt": ""}, "1-1000 characters"), ({"prompt": "x" * 1001}, "1-1000 characters"),
    ({"prompt": 42}, "must be a string"),
    ({"prompt": "a", "variations": MAX_VARIATIONS + 1}, "variations"),
    ({"prompt": "a", "steps": MAX_STEPS + 1}, "steps must be"), ({"prompt": "a", "steps": "2.5"}, "whole number"),
    ({"prompt": "a", "seed": SEED_MAX + 1}, "out of range"), ({"prompt": "a", "seed": -1}, "out of range"),
    ({"prompt": "a", "guidance": "nan"}, "must be a number"), ({"prompt": "a", "bpm": "fast"}, "bpm must be"),
    ({"prompt": "a", "bpm": 900}, "out of range"), ({"prompt": "a", "key": "H"}, "unknown key"),
    ({"prompt": "a", "key": "Am", "mode": "dorian"}, "already names a mode"),
    ({"prompt": "a", "bars": 64, "bpm": 40}, "outside"), ({"prompt": "a", "format": "mp3"}, "not supported"),
    ({"prompt": "a", "samplerate": 22050}, "not supported"), ({"prompt": "a", "lufs": 3}, "out of range"),
    ({"prompt": "a", "loop": "maybe"}, "0/1"), ({"prompt": "a", "loop_crossfade": "2"}, "0/1"),
    ({"prompt": "a", "colour": "red"}, "unknown option 'colour'"),
])
def test_every_limit_is_refused_with_the_reason(opts: dict, why: str) -> None:
    with pytest.raises(RequestError, match=why) as err:
        from_options(opts)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("text", "want"), [
    ("F#m", ("F#", "minor")), ("Bb major", ("Bb", "major")), ("C", ("C", None)), ("d dorian", ("D", "dorian")),
    ("Gbmin", ("F#", "minor")), ("A♭", ("Ab", None)),
])
def test_one_key_parser(text: str, want: tuple) -> None:
    assert parse_key(text) == want


def test_a_record_survives_json_and_gives_the_same_request() -> None:
    r = from_options({"prompt": "lo-fi", "bpm": 80, "variations": 3, "steps": 5, "format": "flac",
                      "dir": "takes", "name": "Keys"}, output=PipelineOptions(sample_rate=44100))
    back = Request.from_record(json.loads(json.dumps(r.record())))
    assert back == r and back.output.sample_rate == 44100 and back.folder == "takes"
    with pytest.raises(RequestError, match="version"):
        Request.from_record({**r.record(), "version": 99})
