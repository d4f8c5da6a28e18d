"""`n2m bench routes`: exported cascades timed against each other in one run (real engines on the
tiny fixture models: the mel route, and the wave route with superres)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from n2m.exporter.bench import main as bench_main


def test_routes_bench_writes_json_and_plot(tiny_model_dir: Path, tiny_wave_superres_dir: Path, tmp_path: Path,
                                           capsys) -> None:
    # an eval summary for the first model only: quality joins in where given, "-" skips
    ev = tmp_path / "eval"
    ev.mkdir()
    (ev / "eval.json").write_text(json.dumps({"summary": {
        "prompts": 3, "tempo": {"octave_4pct": 0.5}, "key": {"tonic_or_relative": 0.25},
        "style": {"agreement": 1.0}, "instruments": {"agreement": 0.0}, "fjd_over_shuffled": 0.9}}))
    out = tmp_path / "out"
    rc = bench_main(["routes", str(tiny_model_dir), str(tiny_wave_superres_dir), "--seconds", "2,3",
                     "--repeats", "2", "--threads", "1", "--out", str(out), "--eval", str(ev), "--eval", "-"])
    assert rc == 0
    rep = json.loads((out / "routes.json").read_text())
    assert (out / "routes.png").stat().st_size > 1000
    mel, wave = rep["models"]
    assert mel["route"] == "mel" and wave["route"] == "wave" and wave["stages"][-1] == "superres"
    assert mel["sample_rate"] == 16000 and wave["sample_rate"] == 48000
    for m in (mel, wave):
        assert set(m["clips"]) == {"2s", "3s"} and m["size_mb"] > 0
        for c, res in m["clips"].items():
            assert len(res["runs_total_s"]) == 2 and res["total_s"] > 0
            assert res["x_realtime"] == pytest.approx(float(c[:-1]) / res["total_s"])
            # the stages' own timings fit inside the end-to-end time
            stages = res["text_s"] + res["generator_s"] + res["cascader_s"] + res["superres_s"] + res["griffin_lim_s"]
            assert stages <= res["total_s"]
            assert 0.0 <= res["steal_pct"] <= 100.0  # the hypervisor's share while it ran (/proc/stat)
        assert m["runtime_process_30s"]["peak_rss_mb"] > 0 and not m["runtime_process_30s"]["torch_imported"]
    assert wave["clips"]["2s"]["superres_s"] > 0 and mel["clips"]["2s"]["superres_s"] == 0
    assert (mel["clips"]["2s"]["griffin_lim_s"] > 0) == (mel["decoder"] == "griffin-lim")
    assert wave["clips"]["2s"]["griffin_lim_s"] == 0
    assert mel["clips"]["2s"]["vs_first"] == 1.0
    assert wave["clips"]["2s"]["vs_first"] == pytest.approx(wave["clips"]["2s"]["total_s"] / mel["clips"]["2s"]["total_s"])
    assert mel["quality"]["key"] == 0.25 and "quality" not in wave
    printed = capsys.readouterr().out
    assert "[wave: wavegen+cascader+superres" in printed and "key 0.25" in printed


@pytest.mark.parametrize("args, message", [
    (["--eval", "-"], "1 --eval for 2 models"),  # an --eval list that does not match the models
    (["--seconds", "ten"], "not a comma list"),  # a clip length that is not a number
    (["--seconds", "600"], "within 2-30 s"),  # an absurd clip length
    (["--repeats", "0"], "--repeats must be >= 1"),
])
def test_routes_bench_refuses_bad_arguments(tiny_model_dir: Path, tmp_path: Path, capsys, args, message) -> None:
    assert bench_main(["routes", str(tiny_model_dir), str(tiny_model_dir), "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "routes.json").exists()


def test_routes_bench_refuses_a_folder_without_manifest(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    assert bench_main(["routes", str(tiny_model_dir), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not an exported model folder" in capsys.readouterr().err
