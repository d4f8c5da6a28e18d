"""Evaluation: the analysers on signals with known answers, and `n2m eval` end to end on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from n2m.exporter.data import write_synthetic_corpus
from n2m.exporter.evaluate import (
    frechet,
    key_scores,
    main,
    measure_key,
    measure_tempo,
    measure_tempo_librosa,
    sanity,
    tempo_scores,
)
from n2m.exporter.metrics.style import ClipClassifier, train_classifier
from n2m.exporter.train import Trainer, load_config

SR = 16000


def _clicks(bpm: float, seconds: float = 8.0) -> np.ndarray:
    audio = np.zeros(int(seconds * SR), dtype=np.float32)
    n = int(0.03 * SR)
    click = (np.exp(-np.arange(n) / (0.005 * SR)) * np.sin(2 * np.pi * 1000 * np.arange(n) / SR)).astype(np.float32)
    for k in range(int(seconds * bpm / 60)):
        s = int(k * 60 / bpm * SR)
        audio[s:s + n] += click[: len(audio) - s]
    return audio


def test_tempo_of_a_click_track():
    """Clicks at 120 and 95 bpm read right by both meters (octave errors allowed); scores for a
    doubled reading, and for a reading at 6/8's dotted-quarter beat: 116 for 174 bpm is felt-right
    in 6/8 only, and 150 (neither beat) is wrong in both."""
    for bpm in (120.0, 95.0):
        assert tempo_scores(bpm, measure_tempo(_clicks(bpm)))["octave"]
        assert tempo_scores(bpm, measure_tempo_librosa(_clicks(bpm)))["octave"]
    assert tempo_scores(100.0, 200.0) == {"strict": False, "octave": True, "felt": True, "rel_error": 1.0,
                                          "octave_rel_error": 0.0}
    assert tempo_scores(174.0, 116.0, "6/8")["felt"] and not tempo_scores(174.0, 116.0, "6/8")["octave"]
    assert tempo_scores(174.0, 232.0, "6/8")["felt"]  # the dotted quarter, doubled
    assert not tempo_scores(174.0, 116.0, "4/4")["felt"] and not tempo_scores(174.0, 116.0)["felt"]
    assert not tempo_scores(174.0, 150.0, "6/8")["felt"]
    assert tempo_scores(120.0, 0.0, "6/8") == {"strict": False, "octave": False, "felt": False, "rel_error": 1.0}


def test_key_of_a_triad_progression():
    t = np.arange(int(6 * SR)) / SR
    audio = np.zeros_like(t)
    for j, (root, third) in enumerate(((9, 3), (2, 3), (4, 4))):  # Am, Dm, E: A minor
        seg = (t >= 2 * j) & (t < 2 * j + 2)
        for semis in (0, third, 7):
            f = 220.0 * 2 ** ((root + semis - 9) / 12)
            audio += np.where(seg, np.sin(2 * np.pi * f * t), 0) / 9
    est = measure_key(audio.astype(np.float32))
    assert key_scores("A", "minor", est)["tonic_or_relative"]
    assert key_scores("C", "major", (9, "minor"))["tonic_or_relative"]
    assert key_scores("D", "dorian", (0, "major"))["tonic_or_relative"]
    assert not key_scores("F#", "major", (9, "minor"))["tonic_or_relative"]


def test_sanity_flags():
    ok = 0.1 * np.sin(np.arange(SR) / 10).astype(np.float32)
    assert not any(sanity(ok)[k] for k in ("nan", "clipping", "silence", "dc"))
    assert sanity(np.full(SR, np.nan, dtype=np.float32))["nan"]
    assert sanity(np.ones(SR, dtype=np.float32))["clipping"]
    assert sanity(np.zeros(SR, dtype=np.float32))["silence"]
    assert sanity(ok + 0.05)["dc"]


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((400, 4)), rng.standard_normal((400, 4))
    assert frechet(a, b) < 0.2
    assert frechet(a, b + 3.0) == pytest.approx(36.0, rel=0.1)


def test_eval_end_to_end_on_tiny_models(tmp_path, capsys):
    corpus = write_synthetic_corpus(tmp_path / "corpus", n_clips=16, seconds=3.0, seed=4, n_eval_prompts=4)
    info = train_classifier(corpus, tmp_path / "clf", steps=4, batch=4, log=lambda m: None)
    assert 0.0 <= info["test"]["style_accuracy"] <= 1.0
    clf = ClipClassifier.load(tmp_path / "clf" / "classifier.pt")
    assert clf.analyse_audio(np.zeros(SR, dtype=np.float32))["embedding"].shape == (128,)
    runs = {}
    for name in ("tiny_generator", "tiny_vocoder"):
        cfg = load_config(f"exporter/configs/{name}.json")
        cfg.corpus = str(corpus)
        Trainer(cfg, tmp_path / name).run(2)
        runs[name] = tmp_path / name / "last.pt"
    out = tmp_path / "eval"
    rc = main([f"{runs['tiny_generator']},{runs['tiny_vocoder']}", "--corpus", str(corpus),
               "--classifier", str(tmp_path / "clf" / "classifier.pt"), "--out", str(out),
               "--steps", "2", "--vocoder-steps", "2", "--max-seconds", "2"])
    assert rc == 0
    data = json.loads((out / "eval.json").read_text())
    s = data["summary"]
    assert s["prompts"] == 4 and len(data["rows"]) == 4
    assert s["tempo"]["n"] == 4 and s["key"]["n"] == 4
    # two prompts name an instrument; the held-out renders' chord/lead instruments give the oracle
    assert s["instruments"]["n"] == 2 and 0.0 <= s["instruments"]["agreement"] <= 1.0
    assert [r.get("instruments") for r in data["rows"]] == [None, ["bell"], None, ["bell"]]
    assert s["oracle_held_out"]["instruments"] is not None
    # the note-based key and scale meters, for the generated clips and the held-out renders
    assert s["notes"]["n"] == 4 and s["oracle_held_out"]["notes"]["n"] == 4
    for r in data["rows"]:
        assert set(r["note_key"]) == {"tonic", "tonic_or_relative", "estimated"}
    assert s["oracle_held_out"]["notes"]["in_scale_mean"] is not None
    assert "key from transcribed notes" in (out / "report.md").read_text()
    for k in ("fjd", "fjd_shuffled_prompts", "fjd_floor", "fd_audio"):
        assert np.isfinite(s["frechet"][k])
    assert (out / "report.md").read_text().startswith("# n2m evaluation")
    for png in ("confusion.png", "tempo.png", "spectrograms.png"):
        assert (out / png).stat().st_size > 0


def test_eval_reports_missing_inputs(tmp_path, capsys):
    assert main([str(tmp_path / "nope.pt"), "--vocoder", "griffin-lim", "--out", str(tmp_path / "e")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_through_an_exported_onnx_cascade(tmp_path):
    from n2m.exporter.export import main as export_main

    corpus = write_synthetic_corpus(tmp_path / "corpus", n_clips=16, seconds=3.0, seed=5, n_eval_prompts=3)
    train_classifier(corpus, tmp_path / "clf", steps=4, batch=4, log=lambda m: None)
    ckpts = []
    for name in ("tiny_generator", "tiny_vocoder"):
        cfg = load_config(f"exporter/configs/{name}.json")
        cfg.corpus = str(corpus)
        Trainer(cfg, tmp_path / name).run(2)
        ckpts.append(str(tmp_path / name / "last.pt"))
    assert export_main([*ckpts, "--out", str(tmp_path / "model"), "--variants", "fp32"]) == 0
    out = tmp_path / "eval"
    assert main([str(tmp_path / "model"), "--corpus", str(corpus), "--classifier",
                 str(tmp_path / "clf" / "classifier.pt"), "--out", str(out), "--steps", "2",
                 "--max-seconds", "2"]) == 0
    s = json.loads((out / "eval.json").read_text())["summary"]
    assert s["model"].startswith("onnx:") and s["prompts"] == 3


def test_tuning_set_is_the_complement_of_the_reported_set():
    from n2m.exporter.evaluate import prompt_subset

    prompts = [{"prompt": f"p{i}", "style": ("a", "b", "c", "d")[i // 40]} for i in range(160)]
    reported, tuning = prompt_subset(prompts, 100), prompt_subset(prompts, 100, tuning=True)
    assert len(reported) == 100 and len(tuning) == 60
    assert {p["prompt"] for p in reported}.isdisjoint({p["prompt"] for p in tuning})
    assert {p["style"] for p in tuning} == {"a", "b", "c", "d"}  # spread over every style
    assert prompt_subset(prompts, None) == prompts
    with pytest.raises(ValueError, match="--tuning-set needs --n"):  # tried: no --n, nothing to leave out
        prompt_subset(prompts, None, tuning=True)


def test_an_exported_cascade_is_evaluated_with_its_own_defaults(tiny_model_dir):
    """Unset steps/guidance/sampler/decoder mean the manifest's (what `n2m generate` runs); given
    ones win. Tried: all unset, and an explicit ddim sampler with 3 steps."""
    from n2m.bridge.manifest import Manifest
    from n2m.exporter.evaluate import EvalOptions, OnnxCascade

    man = Manifest.load(tiny_model_dir)
    own = OnnxCascade(tiny_model_dir, EvalOptions(), threads=1).opts
    assert (own.steps, own.sampler, own.decoder) == (man.generator.default_steps, man.generator.default_sampler,
                                                     man.default_decoder)
    assert own.guidance == man.generator.guidance.default
    given = OnnxCascade(tiny_model_dir, EvalOptions(steps=3, sampler="ddim"), threads=1).opts
    assert (given.steps, given.sampler) == (3, "ddim")


def test_eval_precision_runs_the_int8_graphs(tiny_model_dir, tmp_path, capsys):
    """--precision int8 loads the int8 graph of every stage that ships one (the exporter ships it
    where it passes parity; a stage without one runs fp32) and says so in the model id; tried:
    --precision on checkpoints, which have no graphs to choose from."""
    from n2m.bridge.manifest import Manifest
    from n2m.exporter.evaluate import EvalOptions, OnnxCascade

    stages = Manifest.load(tiny_model_dir).stages
    want = {name: "int8" if "int8" in s.files else "fp32" for name, s in stages.items()}
    assert "int8" in want.values()  # the vocoder's int8 graph passes parity by a wide margin
    cas = OnnxCascade(tiny_model_dir, EvalOptions(), threads=1, precision="int8")
    assert cas.engine.variants == want and cas.id.endswith("int8")
    assert set(OnnxCascade(tiny_model_dir, EvalOptions(), threads=1).engine.variants.values()) == {"fp32"}
    assert main([str(tmp_path / "g.pt") + "," + str(tmp_path / "v.pt"), "--precision", "int8",
                 "--out", str(tmp_path / "e")]) == 2
    assert "give its folder" in capsys.readouterr().err


@pytest.fixture(scope="module")
def fine_corpus_meters(tmp_path_factory):
    """A tiny synthetic corpus with 44.1 kHz stereo FLACs and the v2 caches, and an old (mel80) and a
    new (coarse) classifier trained 4 steps on it."""
    root = tmp_path_factory.mktemp("eval_fine")
    corpus = write_synthetic_corpus(root / "corpus", n_clips=16, seconds=3.0, seed=6, n_eval_prompts=4, fine=True)
    for rep in ("mel80", "coarse"):
        train_classifier(corpus, root / rep, steps=4, batch=4, log=lambda m: None, representation=rep)
    return corpus, root / "mel80" / "classifier.pt", root / "coarse" / "classifier.pt"


def _eval_two_meters(model, fine_corpus_meters, out) -> dict:
    corpus, old, new = fine_corpus_meters
    assert main([str(model), "--corpus", str(corpus), "--classifier", str(old), "--classifier-v2", str(new),
                 "--n", "2", "--max-seconds", "2", "--out", str(out), "--threads", "1"]) == 0
    return json.loads((out / "eval.json").read_text())


def test_eval_of_the_fine_route_reports_both_meters_and_stereo(tiny_fine_dir, fine_corpus_meters, tmp_path):
    """Tried: the tiny fine route (44.1 kHz stereo) on 2 prompts with both classifiers: the old meter on
    the 16 kHz mono mix, the new one on the stereo output; the stereo measures per clip and per style
    against the corpus' 4 held-out FLACs (each the right channel at 80 % of the left)."""
    import soundfile as sf

    data = _eval_two_meters(tiny_fine_dir, fine_corpus_meters, tmp_path / "eval")
    s, rows = data["summary"], data["rows"]
    assert s["meters"] == {"old": "mel80 on the 16 kHz mono mix", "new": "coarse on the native output"}
    new = s["new_meter"]
    assert new["classifier"]["representation"] == "coarse" and new["style"]["n"] == 2
    for k in ("fjd", "fjd_floor", "fjd_shuffled_prompts", "fd_audio", "fd_audio_floor"):
        assert np.isfinite(new["frechet"][k]) and np.isfinite(s["frechet"][k])
    assert new["oracle_held_out"]["style"] is not None and s["oracle_held_out"]["style"] is not None
    for r in rows:
        assert (r["rate"], r["channels"]) == (44100, 2)
        assert isinstance(r["new_meter"]["style_ok"], bool) and isinstance(r["style_ok"], bool)
        assert all(isinstance(r["stereo"][k], float) for k in ("high_db", "side_mid_db", "lr_corr"))
    st = s["stereo"]
    assert st["stereo"] and st["channels"] == 2 and st["renders"]["clips"] == 4 and st["renders"]["missing_flac"] == 0
    # the renders are one signal at two levels: correlation 1, side/mid 20 log10(0.1 / 0.9)
    assert st["renders"]["all"]["lr_corr"]["median"] == pytest.approx(1.0, abs=1e-4)
    assert st["renders"]["all"]["side_mid_db"]["median"] == pytest.approx(-19.08, abs=0.1)
    assert set(st["styles"]) == {r["style"] for r in rows}
    for style in st["styles"].values():
        assert all(isinstance(v, bool) or v is None for v in style["pass"].values())
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| classifier measure | old (mel80 on the 16 kHz mono mix) | new (coarse on the native output) |" in report
    assert "energy > 8 kHz" in report and "key from transcribed notes" in report
    info = sf.info(str(tmp_path / "eval" / "audio" / "000.wav"))
    assert (info.channels, info.samplerate) == (2, 44100)


def test_eval_of_a_mono_model_says_mono(tiny_model_dir, fine_corpus_meters, tmp_path):
    """Tried: the tiny mel cascade (16 kHz mono) with both meters: the new meter takes its mono output
    (upsampled to 44.1 kHz for COARSE), the stereo fields say "mono", the renders are still measured."""
    data = _eval_two_meters(tiny_model_dir, fine_corpus_meters, tmp_path / "eval")
    s, rows = data["summary"], data["rows"]
    assert [(r["rate"], r["channels"]) for r in rows] == [(16000, 1), (16000, 1)]
    assert all(set(r["stereo"].values()) == {"mono"} for r in rows)
    assert s["stereo"]["stereo"] is False and set(s["stereo"]["passed"].values()) == {"mono"}
    assert s["stereo"]["renders"]["clips"] == 4
    assert s["new_meter"]["style"]["agreement"] is not None and s["notes"]["n"] == 2
    assert "The model is mono" in (tmp_path / "eval" / "report.md").read_text()
