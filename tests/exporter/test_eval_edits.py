"""`n2m eval --edits`: the edit meters on signals whose answer is known, the choice of sources, and
the whole measurement on the shipped model with two sources from a synthetic corpus whose held-out
clips have 44.1 kHz stereo FLACs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from n2m.exporter.eval_edits import pick_sources, summarise
from n2m.exporter.evaluate import main
from n2m.exporter.metrics.edits import (
    flux_at,
    flux_curve,
    max_abs_diff,
    mel16k,
    mel_correlation,
    mel_l1,
    spill_ms,
)

ROOT = Path(__file__).resolve().parents[2]
SR = 44100
BAR = 2.0  # 120 bpm, 4/4


def bars_of_music(seconds: float = 8.0, seed: int = 0) -> np.ndarray:
    """A quiet tone bed with a kick and a chord tone on every bar line (every 2 s)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.1 * np.sin(2 * np.pi * 220 * t) + 0.003 * rng.standard_normal(len(t))
    u = np.arange(int(0.4 * SR)) / SR
    hit = (0.6 * np.sin(2 * np.pi * (60 + 40 * np.exp(-u / 0.02)) * u) * np.exp(-u / 0.1)
           + 0.2 * sum(np.sin(2 * np.pi * 440 * k * u) / k for k in (1, 2, 3)) * np.exp(-u / 0.3))
    for k in range(int(seconds / BAR)):
        s = int(k * BAR * SR)
        x[s:s + len(hit)] += hit[: len(x) - s]
    return x.astype(np.float32)


def test_log_mel_likeness_of_same_scaled_and_independent_noise() -> None:
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal(3 * SR).astype(np.float32) * 0.1 for _ in range(2))
    ma = mel16k(a, SR)
    assert mel_correlation(ma, ma) == pytest.approx(1.0)
    assert mel_correlation(ma, mel16k(0.3 * a, SR)) > 0.99  # a gain is a band offset: removed
    assert abs(mel_correlation(ma, mel16k(b, SR))) < 0.1
    assert mel_l1(ma, ma) == 0.0 and mel_l1(ma, mel16k(0.3 * a, SR)) < 0.05
    assert mel_l1(ma, mel16k(b, SR)) > 0.5
    assert mel_correlation(np.zeros((80, 50)), ma) is None


def test_flux_at_a_join_with_and_without_a_click() -> None:
    """A join mid-bar: seamless, or a 20 ms crossfade to another tone, stays below the bar lines'
    onsets; a one-sample click there does not."""
    src = bars_of_music()
    join = 3.0
    j = int(join * SR)
    other = (0.1 * np.sin(2 * np.pi * 330 * np.arange(len(src)) / SR)).astype(np.float32)
    w = np.clip((np.arange(len(src)) - j) / (0.02 * SR), 0.0, 1.0).astype(np.float32)
    faded = src * (1 - w) + (src - 0.1 * np.sin(2 * np.pi * 220 * np.arange(len(src)) / SR) + other) * w
    clicked = src.copy()
    clicked[j] += 0.5
    flux, times = flux_curve(src, SR)
    bar_max = max(flux_at(flux, times, k * BAR) for k in (1, 2, 3))
    for y, louder in ((src, False), (faded, False), (clicked, True)):
        f, t = flux_curve(y, SR)
        assert (flux_at(f, t, join) > bar_max) == louder
    assert flux_at(flux, times, 100.0) == 0.0  # no frame near


def test_kept_samples_and_how_far_a_change_spills() -> None:
    src = np.stack([bars_of_music(2.0)] * 2)
    out = src.copy()
    a, b = SR // 2, SR
    out[:, a:b] += 0.2
    assert spill_ms(out, src, a, b, SR, 2e-3) == 0.0
    keep = (np.arange(src.shape[1]) < a) | (np.arange(src.shape[1]) >= b)
    assert max_abs_diff(out, src, keep) == 0.0 and max_abs_diff(out, src) == pytest.approx(0.2, abs=1e-6)
    out[1, a - 441:a] += 0.01  # a change 10 ms before the region, on one channel
    assert spill_ms(out, src, a, b, SR, 2e-3) == pytest.approx(10.0)
    out[0, b + 881] -= 0.5  # and one 20 ms after it
    assert spill_ms(out, src, a, b, SR, 2e-3) == pytest.approx(20.0, abs=0.03)


class _Reader:
    def __init__(self, clips: list[dict]) -> None:
        self._clips = clips

    def clips(self, split: str) -> list[dict]:
        return [c for c in self._clips if c["split"] == split]


def test_sources_are_round_robin_over_styles_and_must_fit() -> None:
    def clip(i, style, bpm=120.0, duration=10.0, split="test"):
        return {"id": f"c{i:02d}", "style": style, "bpm": bpm, "key": "C", "mode": "major", "meter": "4/4",
                "duration": duration, "split": split}

    clips = [clip(0, "rock"), clip(1, "rock", split="val"), clip(2, "rock", split="train"), clip(3, "ambient"),
             clip(4, "ambient", bpm=60.0, duration=40.0), clip(5, "jazz", duration=7.0), clip(6, "jazz")]
    chosen, skipped = pick_sources(_Reader(clips), 4, (2.0, 30.0))
    # styles in order ambient, jazz, rock; c04 (8 bars = 32 s) and c05 (shorter than 4 bars) refused
    assert [c["id"] for c in chosen] == ["c03", "c06", "c00", "c01"]
    assert [s["id"] for s in skipped] == ["c05", "c04"]
    assert "shorter than 4 bars" in skipped[0]["why"] and "do not fit" in skipped[1]["why"]
    assert pick_sources(_Reader(clips), 4, (2.0, 30.0)) == (chosen, skipped)  # deterministic


def _row(ok_tempo: bool, corr: float, l1: list[float]) -> dict:
    tempo = {"octave": ok_tempo, "strict": ok_tempo}
    return {"source_tempo": tempo, "source_in_scale": 1.0, "plain_in_scale": 0.9,
            "extend": {"length_error_ms": 0.01, "kept_max_diff": 1e-7, "tempo": tempo, "in_scale": 0.95},
            "inpaint": {"same_shape": True, "kept_max_diff": 1e-7, "spill_ms": 0.0, "region_corr": corr,
                        "plain_pair_corr": 0.5, "join_flux": [1.0, 2.0], "bar_flux_max": 3.0,
                        "join_flux_16k": [1.0, 2.0], "bar_flux_max_16k": 3.0},
            "vary": {"l1": l1, "monotonic": l1 == sorted(l1), "plain_l1": 1.5}}


def test_the_summary_holds_each_bar_and_counts_a_failed_source_against_it() -> None:
    rows = [_row(True, 0.3, [0.5, 0.8, 1.0, 1.4]), _row(True, 0.95, [0.5, 0.9, 0.8, 1.4])]
    verdicts = [c["pass"] for c in summarise(rows)["checks"]]
    # region corr 0.95 is a copy; the second source's variations do not grow monotonically
    assert verdicts == [True, True, True, True, True, True, False, True, True, False]
    s = summarise([*rows[:1], {"id": "x", "error": "refused"}])
    assert s["sources"] == 1 and s["failed"] == 1
    assert [c["pass"] for c in s["checks"]][:3] == [False, False, False]  # 1/2 sources is not every source


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Synthetic click-and-chord loops of 12.5 s (4 bars fit at every tempo and meter it draws); the
    held-out clips get 44.1 kHz stereo FLACs made from their 16 kHz mix."""
    import soundfile as sf

    from n2m.exporter.corpus.reader import CorpusReader
    from n2m.exporter.data import write_synthetic_corpus
    from n2m.exporter.metrics.spectral import resample

    root = write_synthetic_corpus(tmp_path_factory.mktemp("c") / "corpus", n_clips=16, seconds=12.5, seed=3)
    reader = CorpusReader(root)
    for c in reader.clips("test") + reader.clips("val"):
        x = resample(reader.audio16k(c), 16000, SR)
        sf.write(str(reader.flac_path(c)), np.stack([x, 0.8 * x]).T, SR, subtype="PCM_24")
    return root


def test_edits_on_the_shipped_model(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "edits"
    rc = main([str(ROOT / "bridge" / "models" / "default"), "--edits", "--corpus", str(corpus), "--n", "2",
               "--out", str(out), "--threads", "2"])
    assert rc == 0
    data = json.loads((out / "edits.json").read_text())
    rows, s = data["rows"], data["summary"]
    assert [r["style"] for r in rows] == ["ambient", "techno"] and s["sources"] == 2
    for r in rows:
        assert (r["rate"], r["channels"]) == (SR, 2)
        e, i, v = r["extend"], r["inpaint"], r["vary"]
        assert abs(e["length_error_ms"]) <= 5.0 and e["kept_max_diff"] <= 2e-3 and e["channels"] == 2
        assert i["same_shape"] and i["kept_max_diff"] <= 2e-3 and i["spill_ms"] <= 50.0
        assert -1.0 <= i["region_corr"] < 1.0 and -1.0 <= i["plain_pair_corr"] <= 1.0
        assert len(i["join_flux"]) == len(i["join_flux_16k"]) == 2 and i["bar_flux_max"] > 0 and i["bar_flux_max_16k"] > 0
        assert len(v["l1"]) == 4 and all(x > 0 for x in v["l1"])
        assert r["source_in_scale"] is not None and 0.0 <= r["source_in_scale"] <= 1.0
    assert len(s["checks"]) == 10 and s["checks"][0]["pass"] and s["checks"][1]["pass"]
    md = (out / "edits.md").read_text()
    assert md.startswith("# Edits: default-") and "| inpaint: same length and channels | 2/2 | 2/2 | pass |" in md
    assert str(corpus.parent) not in md  # the corpus is named, not its path


def test_edits_refusals(corpus: Path, tmp_path: Path, capsys) -> None:
    assert main(["--edits", "--corpus", str(corpus), "--out", str(tmp_path)]) == 2
    assert "give MODEL" in capsys.readouterr().err
    (tmp_path / "gen.pt").write_bytes(b"")
    assert main([str(tmp_path / "gen.pt"), "--edits", "--corpus", str(corpus), "--out", str(tmp_path)]) == 2
    assert "exported cascade" in capsys.readouterr().err
    assert main([str(ROOT / "bridge" / "models" / "default"), "--edits", "--corpus", str(tmp_path / "none"),
                 "--out", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        main([str(ROOT / "bridge" / "models" / "default"), "--edits", "--ceiling", "--corpus", str(corpus)])
