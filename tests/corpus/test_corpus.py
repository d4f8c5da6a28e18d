"""The corpus builder end to end with the real FluidSynth renderer, on a few short clips."""

from __future__ import annotations

import errno
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from n2m.bridge.controls import BEATS_PER_BAR, METERS, MODES, TONICS, parse_controls
from n2m.bridge.features import log_mel
from n2m.exporter.corpus import build as build_mod
from n2m.exporter.corpus.build import BuildConfig, BuildError, build
from n2m.exporter.corpus.cli import main as corpus_main
from n2m.exporter.corpus.compose import Composer
from n2m.exporter.corpus.plan import plan_corpus
from n2m.exporter.corpus.prompts import eval_prompts
from n2m.exporter.corpus.reader import CorpusReader
from n2m.exporter.corpus.styles import STYLES
from n2m.exporter.corpus.synth import SoundFont, Synth, SynthError, load_library
from n2m.exporter.corpus.verify import caption_problems, check_clip

SF = ("FluidR3_GM", "TimGM6mb")  # fast-loading soundfonts for tests
STY = ("house", "waltz", "bossa_nova")


def small_cfg(out: Path, **kw) -> BuildConfig:
    base = dict(out=out, hours=0.02, seed=5, jobs=1, shard_size=2, soundfonts=SF, styles=STY, max_shards=2,
                quiet=True)
    base.update(kw)
    return BuildConfig(**base)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    s = build(small_cfg(out))
    assert s.shards_built == 2 and s.clips == 4
    return out


def test_reader_contract(corpus):
    r = CorpusReader(corpus)
    assert r.info["format"] == 1 and r.info["audio_rate"] == 16000 and r.info["flac_rate"] == 44100
    clips = r.clips()
    assert len(clips) == 4
    for c in clips:
        assert c["split"] in ("train", "val", "test") and c["style"] in STY
        assert c["key"] in TONICS and c["mode"] in MODES and c["meter"] in METERS
        assert 60 <= c["bpm"] <= 180 and len(c["captions"]) >= 4
        # whole bars at the labelled tempo
        assert abs(c["duration"] - c["bars"] * BEATS_PER_BAR[c["meter"]] * 60 / c["bpm"]) < 1e-4
        y = r.audio16k(c)
        assert y.dtype == np.float32 and y.shape == (round(c["duration"] * 16000),)
        assert np.abs(y).max() <= 1.0 and np.sqrt(np.mean(y ** 2)) > 0.01  # not silent
        mel = r.mel(c)
        assert mel.shape == (80, 1 + y.shape[0] // 320) and mel.dtype == np.float32
        # the cached mel is exactly the shared front-end of the cached audio (up to float16)
        assert np.abs(mel - log_mel(y)).max() < 0.05
        info = sf.info(str(r.flac_path(c)))
        assert info.channels == 2 and info.samplerate == 44100 and info.frames == round(c["duration"] * 44100)
        # the clip starts on a downbeat: sound within the first 50 ms
        assert np.abs(y[:800]).max() > 0.01


def test_verify_checks_on_real_clips(corpus):
    r = CorpusReader(corpus)
    for c in r.clips():
        res = check_clip((str(corpus), c))
        assert not res["silent"] and not res["clipped"] and not res["dc_offset"], res
        assert res["caption_problems"] == [] and res["problems"] == [], res
        assert res["tempo"] in ("strict", "octave", "metric", "wrong")


def test_caption_disagreement_is_detected(corpus):
    c = dict(CorpusReader(corpus).clips()[0])
    # input tried: a caption that states another tempo and key than the metadata
    wrong_key = "C#" if c["key"] != "C#" else "D"
    c["captions"] = c["captions"][:3] + [f"{c['bpm'] + 7:g} bpm house in {wrong_key} {c['mode']}"]
    probs = caption_problems(c)
    assert any("bpm" in p for p in probs) and any("key" in p for p in probs)


def test_resume_skips_complete_shards_and_redoes_interrupted(corpus, tmp_path):
    import shutil

    out = tmp_path / "c"
    shutil.copytree(corpus, out)
    before = (out / "shards" / "00000" / "meta.jsonl").read_text()
    # simulate a build killed while writing shard 1: only a .tmp is left
    shutil.rmtree(out / "shards" / "00001")
    (out / "shards" / "00001.tmp").mkdir()
    (out / "shards" / "00001.tmp" / "junk.flac").write_bytes(b"partial")
    s = build(small_cfg(out))
    assert s.shards_skipped == 1 and s.shards_built == 1
    assert not (out / "shards" / "00001.tmp").exists()
    assert (out / "shards" / "00000" / "meta.jsonl").read_text() == before
    # metadata of the rebuilt shard equals the original build's: deterministic for the seed
    assert (out / "shards" / "00001" / "meta.jsonl").read_text() == \
        (corpus / "shards" / "00001" / "meta.jsonl").read_text()


def test_disk_full_stops_cleanly_and_resumes(corpus, tmp_path, monkeypatch):
    out = tmp_path / "full"
    real_save = np.save

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    # input tried: the disk fills while the first shard is written
    monkeypatch.setattr(build_mod.np, "save", full)
    with pytest.raises(BuildError, match="disk full"):
        build(small_cfg(out, max_shards=1))
    assert not list((out / "shards").glob("*.tmp")) and not list((out / "shards").glob("0*"))
    monkeypatch.setattr(build_mod.np, "save", real_save)
    s = build(small_cfg(out, max_shards=1))
    assert s.shards_built == 1 and CorpusReader(out).clips()


def test_other_settings_in_same_dir_refused(corpus, tmp_path):
    import shutil

    out = tmp_path / "c2"
    shutil.copytree(corpus, out)
    # input tried: resuming a corpus with another seed
    with pytest.raises(BuildError, match="another corpus"):
        build(small_cfg(out, seed=6))


def test_not_enough_disk_is_refused_before_work(tmp_path, monkeypatch):
    monkeypatch.setattr(build_mod, "_free_bytes", lambda p: 1000)  # input tried: 1 kB free
    with pytest.raises(BuildError, match="not enough disk space"):
        build(small_cfg(tmp_path / "x"))


@pytest.mark.parametrize("argv, reason", [
    (["build", "--out", "X", "--hours", "-1", "--seed", "1"], "positive"),
    (["build", "--out", "X", "--hours", "abc", "--seed", "1"], "not a number"),
    (["build", "--out", "X", "--hours", "1", "--seed", "-2"], ">= 0"),
    (["build", "--out", "X", "--hours", "1", "--seed", "1", "--jobs", "0"], "jobs"),
])
def test_nonsense_arguments_refused(argv, reason, capsys):
    with pytest.raises(SystemExit) as e:
        corpus_main(argv)
    assert e.value.code == 2 and reason in capsys.readouterr().err


def test_unknown_style_and_huge_hours_refused(tmp_path, capsys):
    rc = corpus_main(["build", "--out", str(tmp_path / "x"), "--hours", "1", "--seed", "1", "--styles", "polka"])
    assert rc == 2 and "unknown styles" in capsys.readouterr().err
    rc = corpus_main(["build", "--out", str(tmp_path / "x"), "--hours", "5000", "--seed", "1"])
    assert rc == 2 and "2000 hours" in capsys.readouterr().err


def test_missing_fluidsynth_names_debian_package(monkeypatch):
    monkeypatch.setenv("N2M_LIBFLUIDSYNTH", "/nonexistent/libfluidsynth.so.3")  # input tried: no library
    with pytest.raises(SynthError, match="apt-get install fluidsynth"):
        load_library()


def test_missing_soundfont_names_debian_package():
    # input tried: a soundfont file that is not installed
    with pytest.raises(SynthError, match="apt-get install fluid-soundfont-gm"):
        Synth(SoundFont("FluidR3_GM", "/nonexistent/FluidR3_GM.sf2", "fluid-soundfont-gm", 1.0))


def test_renderer_is_deterministic_and_reacts_to_notes():
    from n2m.exporter.corpus.synth import soundfont_by_name

    s = Synth(soundfont_by_name("TimGM6mb"))
    ev = [(0, 0, 0, 60, 100), (22050, 1, 0, 60, 0)]
    a = s.render({0: (0, 0)}, ev, 44100)
    s.render({1: (0, 30), 9: (128, 0)}, [(0, 0, 1, 40, 120), (0, 0, 9, 36, 120)], 30000)  # leaves notes on
    b = s.render({0: (0, 0)}, ev, 44100)
    silent = s.render({0: (0, 0)}, [], 44100)
    assert a.shape == (2, 44100) and np.abs(a).max() > 0.05
    assert np.abs(silent).max() == 0.0  # nothing carries over from the previous render
    assert np.abs(a - b).max() < 0.01 * np.abs(a).max()  # same events, same sound (to -40 dB)


def test_plan_and_notes_are_deterministic_and_cover_controls():
    a = plan_corpus(11, 0.6, list(SF))
    b = plan_corpus(11, 0.6, list(SF))
    assert a == b
    assert {p.style for p in a} == set(STYLES)
    assert plan_corpus(12, 0.6, list(SF)) != a
    for p in a[:12]:
        if p.score is None:
            n1 = [(n.start, n.pitch) for part in Composer(p).compose() for n in part.notes]
            n2 = [(n.start, n.pitch) for part in Composer(p).compose() for n in part.notes]
            assert n1 == n2 and n1


def test_eval_prompts_disjoint_and_controls_read_back():
    caps = {"A dark house track at 120 BPM in A minor, featuring piano."}
    ps = eval_prompts(1, caps)
    assert len(ps) >= 120 and {p["style"] for p in ps} == set(STYLES)
    assert not {p["prompt"] for p in ps} & caps
    for p in ps:
        c = parse_controls(p["prompt"])
        assert (c.bpm, c.key, c.mode, c.meter, c.bars) == (p["bpm"], p["key"], p["mode"], p["meter"], p["bars"])
    # about half name one instrument of the style's chord or lead part, by the corpus' label for it
    from n2m.exporter.corpus import theory as th
    from n2m.exporter.corpus.styles import DEFS

    named = [p for p in ps if p["instruments"]]
    assert 0.3 < len(named) / len(ps) < 0.7
    for p in named:
        (inst,) = p["instruments"]
        assert f" with {inst}" in p["prompt"]
        allowed = {th.friendly(g) for r in ("comp", "lead") for g in DEFS[p["style"]].programs.get(r, ())}
        assert inst in allowed
    assert eval_prompts(1, caps) == ps  # deterministic for a seed


def test_chorale_score_is_reorchestrated():
    from n2m.exporter.corpus.plan import plan_composition
    from n2m.exporter.corpus.scores import compose_score, resolve_score

    plan = plan_composition(3, 0, "chorale", list(SF), 0, score_ref="bach/bwv1.6.mxl")[0]
    resolved, sc = resolve_score(plan)
    assert resolved.meter in METERS and resolved.mode in ("major", "minor")
    parts = compose_score(resolved, sc)
    roles = [p.role for p in parts]
    assert roles[:4] == ["voice1", "voice2", "voice3", "voice4"] and "accompaniment" in roles
    # every note lies inside the clip (looped or cut to whole bars)
    end = resolved.bars * BEATS_PER_BAR[resolved.meter]
    assert all(0 <= n.start < end for p in parts for n in p.notes)
    corpus_json = json.dumps(replace(resolved).__dict__, default=str)
    assert "bwv1.6" in corpus_json


def test_stats_table_and_plot(corpus, tmp_path, capsys):
    png = tmp_path / "stats.png"
    rc = corpus_main(["stats", str(corpus), "--plot", str(png)])
    out = capsys.readouterr().out
    assert rc == 0 and "4 clips" in out and "style:" in out and "tempo:" in out
    assert "3/4 or 6/8: " in out and "% of clips" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_stats_and_verify_refuse_a_missing_corpus(tmp_path, capsys):
    # input tried: a directory with no corpus.json
    assert corpus_main(["stats", str(tmp_path)]) == 2
    assert corpus_main(["verify", str(tmp_path)]) == 2
    assert "build a corpus first" in capsys.readouterr().out


def test_bench_refuses_nonsense(capsys):
    from n2m.exporter.corpus.bench import main as bench_main

    assert bench_main(["--hours", "0"]) == 2  # input tried: zero hours
    assert "--hours" in capsys.readouterr().err


def test_audio48k_option_keeps_48k_renders(tmp_path):
    """`--audio48k`: clips render at 48 kHz, the 48 kHz mono mix is kept beside the 16 kHz one (which
    is derived from the same render), and the corpus has its own id."""
    import soxr

    out = tmp_path / "c48"
    cfg = small_cfg(out, max_shards=1, audio48k=True)
    assert build(cfg).clips == 2
    assert build_mod.corpus_id(cfg) != build_mod.corpus_id(replace(cfg, audio48k=False))
    r = CorpusReader(out)
    assert r.has_audio48k and r.info["audio48k_rate"] == 48000 and r.info["flac_rate"] == 48000
    for c in r.clips():
        hi, lo = r.audio48k(c), r.audio16k(c)
        assert hi.shape == (round(c["duration"] * 48000),) and np.sqrt(np.mean(hi ** 2)) > 0.01
        assert sf.info(str(r.flac_path(c))).samplerate == 48000
        # real 48 kHz content: energy above 8 kHz (which no upsampled 16 kHz signal has)
        spec = np.abs(np.fft.rfft(hi)) ** 2
        assert spec[np.fft.rfftfreq(hi.size, 1 / 48000) > 9000].sum() > 1e-4 * spec.sum()
        down = soxr.resample(hi, 48000, 16000, quality="HQ")[: lo.size]
        assert np.abs(down[1000:-1000] - lo[1000:-1000]).max() < 0.05
    assert check_clip((str(out), r.clips()[0]))["problems"] == []


def test_a_16k_corpus_has_no_48k_audio(corpus):
    from n2m.exporter.corpus.reader import CorpusError

    r = CorpusReader(corpus)
    assert not r.has_audio48k
    with pytest.raises(CorpusError, match=r"no 48 kHz audio.*--audio48k"):
        r.audio48k(r.clips()[0])


def test_fine_and_coarse_caches_align_with_the_flac(corpus):
    from n2m.bridge.features import COARSE, FINE, coarse_mel, fine_mel

    r = CorpusReader(corpus)
    assert r.has_fine and r.fine_spec == FINE and r.coarse_spec == COARSE
    for c in r.clips():
        stereo, rate = sf.read(str(r.flac_path(c)), dtype="float32")
        fine, coarse = r.fine(c), r.coarse(c)
        n = stereo.shape[0]
        assert fine.shape == (2, 192, 1 + n // 441) and fine.dtype == np.float32
        assert coarse.shape == (COARSE.n_bins, -(-fine.shape[2] // 2)) and coarse.dtype == np.float32
        # the caches are the shared front-end of the FLAC's mid and side (up to 16-bit and float16)
        again = fine_mel(stereo.T)
        loud = again > np.log(FINE.log_floor) + 6  # where 16-bit quantisation noise is far below
        assert np.median(np.abs(fine - again)[loud]) < 0.01 and np.quantile(np.abs(fine - again)[loud], 0.99) < 0.1
        assert np.abs(coarse - coarse_mel(fine[0])).max() < 0.02
        assert fine[0].mean() > fine[1].mean()  # a side channel quieter than the mid


def test_fine_and_coarse_caches_are_deterministic(corpus, tmp_path):
    again = tmp_path / "again"
    build(small_cfg(again, max_shards=1))
    a, b = CorpusReader(corpus), CorpusReader(again)
    for ca, cb in zip(a.clips()[:2], b.clips(), strict=True):
        assert {k: v for k, v in ca.items() if k != "shard"} == {k: v for k, v in cb.items() if k != "shard"}
        # FluidSynth keeps a little voice state between renders: equal to within a small level
        assert np.median(np.abs(a.coarse(ca) - b.coarse(cb))) < 0.01
        assert np.median(np.abs(a.fine(ca) - b.fine(cb))) < 0.01


def test_a_48k_corpus_has_no_fine_caches(tmp_path):
    from n2m.exporter.corpus.reader import CorpusError

    out = tmp_path / "c48"
    build(small_cfg(out, max_shards=1, shard_size=1, audio48k=True))
    r = CorpusReader(out)
    assert not r.has_fine
    with pytest.raises(CorpusError, match="no FINE/COARSE"):
        r.coarse(r.clips()[0])


def test_missing_optional_soundfont_builds_with_a_one_line_note(tmp_path, monkeypatch):
    from n2m.exporter.corpus import plan as plan_mod
    from n2m.exporter.corpus import synth as synth_mod

    # input tried: the OPL3 font not installed (and no MuseScore, which loads slowly)
    fonts = tuple(replace(f, path="/nonexistent/OPL.sf2") if f.name == "OPL3_FM" else f
                  for f in synth_mod.SOUNDFONTS if f.name != "MuseScore_General")
    monkeypatch.setattr(synth_mod, "SOUNDFONTS", fonts)
    monkeypatch.setattr(plan_mod, "SOUNDFONTS", fonts)
    note = synth_mod.missing_optional(None)
    assert note is not None and "\n" not in note and "OPL3_FM" in note and "apt-get install opl3-soundfont" in note
    assert synth_mod.missing_optional(["FluidR3_GM", "TimGM6mb"]) is None  # named fonts: nothing optional
    s = build(small_cfg(tmp_path / "c", soundfonts=(), styles=("chiptune",), max_shards=1))
    assert s.clips == 2 and s.notes == [note]
    assert {c["soundfont"] for c in CorpusReader(tmp_path / "c").clips()} <= {"FluidR3_GM", "TimGM6mb"}


def test_kit_font_plays_the_drum_channel():
    from n2m.exporter.corpus.synth import DRUM_CHANNEL, soundfont_by_name

    kit = soundfont_by_name("AVL_Black_Pearl")
    if not Path(kit.path).is_file():
        pytest.skip(f"{kit.package} is not installed")
    s = Synth(soundfont_by_name("TimGM6mb"))
    ev = [(0, 0, DRUM_CHANNEL, 38, 110), (11025, 1, DRUM_CHANNEL, 38, 0)]
    gm = s.render({DRUM_CHANNEL: (128, 0)}, ev, 22050)
    acoustic = s.render({DRUM_CHANNEL: (0, 0, s.load_kit(kit))}, ev, 22050)
    assert np.abs(acoustic).max() > 0.01 and np.abs(gm).max() > 0.01
    assert np.abs(acoustic - gm).max() > 0.1 * np.abs(gm).max()  # another snare


def test_plan_has_a_fifth_of_clips_in_three():
    from n2m.exporter.corpus.plan import SCORE_STYLES

    plans = plan_corpus(7, 2.0, list(SF))
    free = [p for p in plans if p.style not in SCORE_STYLES]  # score styles take the score's meter
    triple = sum(p.meter != "4/4" for p in free)
    assert triple / len(plans) > 0.15 and {p.meter for p in free} == set(METERS)
