"""`n2m eval --ceiling`: the representation adapters, and the whole measurement on a tiny corpus
with stereo FLAC renders (the shipped model's Griffin-Lim route, a tiny cascade's diffusion vocoder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from n2m.exporter.ceiling_routes import SPECS, MelGriffinLim, model_decoders, spec_decoder
from n2m.exporter.data import write_synthetic_corpus
from n2m.exporter.evaluate import main
from n2m.exporter.metrics.stereo import lr_correlation, side_mid_db

ROOT = Path(__file__).resolve().parents[2]
SR = 44100


def stereo_tones(seed: int, seconds: float = 3.0) -> np.ndarray:
    """[2, samples] a few decaying tones, panned a little apart."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    left, right = np.zeros_like(t), np.zeros_like(t)
    for k, p in enumerate(rng.choice(np.arange(55, 80), 5, replace=False)):
        on = (t >= 0.5 * k) & (t < 0.5 * k + 0.45)
        tone = np.where(on, np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t) * np.exp(-4 * (t - 0.5 * k)), 0)
        pan = 0.3 + 0.4 * (k % 2)
        left += (1 - pan) * tone * 0.4
        right += pan * tone * 0.4
    return np.stack([left, right]).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A synthetic corpus whose held-out clips have 44.1 kHz stereo FLACs, as `n2m corpus build` writes."""
    import soundfile as sf

    root = write_synthetic_corpus(tmp_path_factory.mktemp("c") / "corpus", n_clips=16, seconds=3.0, seed=2)
    for line in (root / "shards" / "00000" / "meta.jsonl").read_text().splitlines():
        meta = json.loads(line)
        if meta["split"] != "train":
            sf.write(str(root / "shards" / "00000" / meta["flac"]), stereo_tones(int(meta["id"][3:])).T, SR)
    return root


def test_spec_decoders_keep_length_layout_and_rate():
    x = stereo_tones(0, 1.0)
    ms = spec_decoder("mel192_44k_ms")(x, SR, 0)
    assert ms.sr == SR and ms.audio.shape == x.shape and ms.seconds > 0
    mono = SPECS["mel80_16k"](x, SR, 0)
    assert mono.sr == 16000 and mono.audio.shape == (1, 16000)
    same = spec_decoder("mel192_44k_ms")(np.stack([x[0], x[0]]), SR, 0)  # no side: none made
    # a silent side decodes to Griffin-Lim noise at the log-mel floor, far below the mid
    assert side_mid_db(same.audio) < -30 and lr_correlation(same.audio) > 0.99
    mels, length = MelGriffinLim(SPECS["mel192_44k_ms"].spec, "mid_side").encode(x, SR)
    assert mels.shape[:2] == (2, 192) and length == x.shape[1]
    with pytest.raises(ValueError, match="unknown --ceiling-spec"):
        spec_decoder("mel999")


def test_ceiling_of_the_shipped_model_and_a_front_end(corpus, tmp_path, capsys):
    out = tmp_path / "ceiling"
    rc = main([str(ROOT / "bridge" / "models" / "default"), "--ceiling", "--corpus", str(corpus), "--n", "3",
               "--ceiling-spec", "mel192_44k_ms", "--out", str(out)])
    assert rc == 0
    data = json.loads((out / "ceiling.json").read_text())
    s = data["summary"]
    assert s["clips"] == 3 and set(s["splits"]) == {"test", "val"}
    rows = s["rows"]
    assert list(rows) == ["render", "reference_16k", "decoder_alone", "oracle_generator", "spec:mel192_44k_ms"]
    assert rows["render"]["note_f1"] == 1.0 and rows["render"]["side_mid_db"] > -40
    assert rows["reference_16k"]["note_f1"] > 0.7 and rows["reference_16k"]["hf_above_8k_db"] <= -60
    assert rows["reference_16k"]["lr_corr"] == 1.0  # mono
    for name in ("decoder_alone", "oracle_generator", "spec:mel192_44k_ms"):
        assert 0.0 <= rows[name]["note_f1"] <= 1.0 and rows[name]["cost_per_s"] > 0
    assert rows["spec:mel192_44k_ms"]["side_mid_db"] > -40  # the side channel is decoded too
    assert len(data["per_clip"]["decoder_alone"]) == 3
    md = (out / "ceiling.md").read_text()
    assert "| decoder_alone |" in md and "LSD 16-22.05k" in md


def test_ceiling_through_the_engine_cascader(corpus, tiny_model_dir, tmp_path):
    decoders = model_decoders(tiny_model_dir, "vocoder")
    from n2m.exporter.eval_ceiling import run_ceiling

    s = run_ceiling(decoders, corpus, tmp_path / "c", n=1, log=lambda m: None)
    assert s["rows"]["decoder_alone"]["cost_per_s"] > 0 and s["rows"]["oracle_generator"]["cost_per_s"] > 0
    clip = json.loads((tmp_path / "c" / "ceiling.json").read_text())["per_clip"]["decoder_alone"][0]
    assert (clip["channels"], clip["sample_rate"]) == (1, 16000)


def test_ceiling_errors(corpus, tmp_path, capsys):
    assert main(["--ceiling", "--corpus", str(corpus), "--out", str(tmp_path)]) == 2
    assert "give MODEL" in capsys.readouterr().err
    assert main(["--ceiling-spec", "nope", "--corpus", str(corpus), "--out", str(tmp_path)]) == 2
    assert main(["--ceiling-spec", "mel80_16k", "--corpus", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
