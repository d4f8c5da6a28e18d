"""The evaluation classifier (exporter.metrics.style) in both representations, trained a few steps
on the tiny synthetic corpus with the v2 caches, loaded back and run on audio and on corpus mels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from n2m.bridge.features import COARSE
from n2m.exporter.corpus.reader import CorpusError, CorpusReader
from n2m.exporter.data import write_synthetic_corpus
from n2m.exporter.eval_ceiling import load_render
from n2m.exporter.metrics.style import ClipClassifier, audio_features, main, train_classifier


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("fine") / "corpus", n_clips=8, seconds=3.0, seed=3,
                                  fine=True)


@pytest.mark.parametrize(("representation", "bins"), [("mel80", 80), ("coarse", COARSE.n_bins)])
def test_trains_and_loads_in_each_representation(corpus, tmp_path, representation, bins):
    """Tried: 3 steps of batch 4 per representation, then the checkpoint loaded and run on 44.1 kHz
    stereo audio, 16 kHz mono audio, and a corpus mel of the wrong representation (refused)."""
    info = train_classifier(corpus, tmp_path / "clf", steps=3, batch=4, log=lambda m: None,
                            representation=representation)
    assert info["representation"] == representation and info["steps"] == 3 and info["train_seconds"] >= 0
    assert info["test"]["clips"] == 1 and 0.0 <= info["test"]["style_accuracy"] <= 1.0
    clf = ClipClassifier.load(tmp_path / "clf" / "classifier.pt")
    assert clf.representation == representation
    reader = CorpusReader(corpus)
    clip = reader.clips("test")[0]
    assert clf.corpus_mel(reader, clip).shape[0] == bins
    stereo, sr = load_render(reader, clip, None)
    a = clf.analyse_audio(stereo, sr)
    assert a["embedding"].shape == (128,) and a["style_probs"].sum() == pytest.approx(1.0, abs=1e-5)
    assert clf.analyse_audio(reader.audio16k(clip), 16000)["inst_probs"].shape == (len(clf.cfg.instruments),)
    other = reader.coarse(clip) if representation == "mel80" else reader.mel(clip)
    with pytest.raises(ValueError, match=f"takes {bins} bins"):
        clf.analyse_mel(other)


def test_coarse_of_audio_matches_the_corpus_cache(corpus):
    """Tried: the COARSE mel computed from a clip's 44.1 kHz stereo FLAC against the one the corpus
    cached from it (what the coarse classifier trains on): equal up to float16 and 16-bit rounding."""
    reader = CorpusReader(corpus)
    for clip in reader.clips()[:2]:
        stereo, sr = load_render(reader, clip, None)
        got = audio_features(stereo, sr, "coarse")
        assert got.shape == reader.coarse(clip).shape
        assert np.abs(got - reader.coarse(clip)).max() < 0.05
    with pytest.raises(ValueError, match="unknown representation"):
        audio_features(stereo, sr, "mel192")


def test_old_checkpoints_load_as_mel80(corpus, tmp_path):
    """Tried: a checkpoint saved before the representation field (its config has no such key)."""
    train_classifier(corpus, tmp_path / "clf", steps=2, batch=2, log=lambda m: None)
    path = tmp_path / "clf" / "classifier.pt"
    ck = torch.load(path, weights_only=False)
    del ck["config"]["representation"]
    torch.save(ck, path)
    clf = ClipClassifier.load(path)
    assert clf.representation == "mel80" and clf.cfg.mel_mean == -4.5
    assert clf.analyse_mel(CorpusReader(corpus).mel(CorpusReader(corpus).clips()[0]))["embedding"].shape == (128,)


def test_coarse_needs_a_corpus_with_the_v2_caches(tmp_path, capsys):
    """Tried: --representation coarse on a corpus built without the FINE/COARSE caches."""
    plain = write_synthetic_corpus(tmp_path / "plain", n_clips=4, seconds=1.0, seed=1)
    with pytest.raises(CorpusError, match="caches no COARSE"):
        train_classifier(plain, tmp_path / "clf", steps=1, batch=2, log=lambda m: None, representation="coarse")
    assert main(["--corpus", str(plain), "--out", str(tmp_path / "c2"), "--steps", "1",
                 "--representation", "coarse"]) == 2
    assert "caches no COARSE" in capsys.readouterr().err
