"""`n2m eval MODEL --loops N` (exporter.eval_loops) end to end on the tiny exported cascade."""

from __future__ import annotations

import json

from n2m.exporter.data import write_synthetic_corpus
from n2m.exporter.evaluate import main


def test_loops_measures_both_ways_of_looping(tiny_model_dir, tmp_path, capsys):
    """Two prompts of a synthetic corpus's evaluation set, seed 3: each made as a periodic loop and
    as a crossfaded one, 4 bars, measured and written to loops.json with a summary per way."""
    corpus = write_synthetic_corpus(tmp_path / "corpus", n_clips=4, seconds=2.0, seed=6, n_eval_prompts=3)
    out = tmp_path / "loops"
    assert main([str(tiny_model_dir), "--loops", "2", "--corpus", str(corpus), "--out", str(out), "--seed", "3"]) == 0
    data = json.loads((out / "loops.json").read_text())
    rows, summary = data["rows"], data["summary"]
    print(json.dumps(summary, indent=1))
    assert [r["seed"] for r in rows] == [3, 4]
    for r in rows:
        assert r["periodic"]["loop_seam"] == "periodic" and r["periodic"]["stretch_ratio"] == 1.0
        assert r["crossfade"]["loop_seam"] == "crossfade"
        assert r["periodic"]["samples"] == r["crossfade"]["samples"] and len(r["periodic"]["bar_line_flux"]) == 4
    for way in ("periodic", "crossfade"):
        assert summary[way]["n"] == 2 and 0.0 <= summary[way]["flux_within_inner"] <= 1.0
    assert summary["periodic"]["stretched"] == 0.0
    assert "loops.json" in capsys.readouterr().err
