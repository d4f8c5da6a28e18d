"""`n2m bench`: its measuring parts on the tiny cascade (no timing assertions), the plot, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from n2m.bridge.engine import Engine  # noqa: E402
from n2m.exporter.bench import engine as bench  # noqa: E402
from n2m.exporter.export import (
    load_checkpoint,  # noqa: E402
    onnx_unet,  # noqa: E402
)


def test_matmul_peak_and_flops(tiny_checkpoints) -> None:
    peak = bench.matmul_peak_gflops(threads=1, n=256, repeats=2)
    assert peak["torch_gflops"] > 0 and peak["ort_gflops"] > 0
    gen, voc = (load_checkpoint(p)[0] for p in tiny_checkpoints)
    f1 = bench.stage_flops(gen, voc, frames=64, tokens=16)
    f2 = bench.stage_flops(gen, voc, frames=128, tokens=16)
    assert f1["generator"] > 0 and f1["vocoder"] > 0
    assert f2["vocoder"] == pytest.approx(2 * f1["vocoder"], rel=0.05)  # linear in length


@pytest.mark.slow  # exports two U-Nets (~1 min) and generates a 30 s clip
def test_unfused_folder_runs_the_same_cascade(tiny_model_dir: Path, tiny_checkpoints, tmp_path: Path) -> None:
    gen, voc = (load_checkpoint(p)[0] for p in tiny_checkpoints)
    unfused = bench._unfused_dir(tiny_model_dir, gen, voc, tmp_path / "unfused")
    counts = onnx_unet.op_counts(unfused / "generator.onnx")
    assert counts.get("Softmax", 0) == onnx_unet.attention_blocks(gen) and "Attention" not in counts
    from n2m.bridge.controls import Controls

    fused_e = Engine.load(tiny_model_dir, provider="cpu", threads=1)
    unfused_e = Engine.load(unfused, provider="cpu", threads=1)
    a = bench._engine_run(fused_e, Controls(seconds=2.0), 0)
    b = bench._engine_run(unfused_e, Controls(seconds=2.0), 0)
    assert set(a) == set(b) == {"text_s", "generator_s", "cascader_s", "total_s"}
    rss = bench.runtime_peak_rss(tiny_model_dir, "cpu", 1)
    assert rss["peak_rss_mb"] > 10 and rss["torch_imported"] is False


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs Linux /proc/stat")
def test_steal_share_is_recorded_around_a_run() -> None:
    """Each timed run carries the share of CPU time the hypervisor stole meanwhile: a real
    /proc/stat reading before and after ~0.3 s of matrix products, passed through with its args."""
    import numpy as np

    steal, total = bench._cpu_ticks()
    assert 0 <= steal <= total and total > 0

    def work(n: int, seconds: float) -> dict[str, float]:
        a = np.ones((n, n), np.float32)
        t0 = bench.time.perf_counter()
        while bench.time.perf_counter() - t0 < seconds:
            a = (a @ a) / n
        return {"total_s": bench.time.perf_counter() - t0}

    r = bench._with_steal(work, 128, 0.3)
    assert r["total_s"] >= 0.3 and 0.0 <= r["steal_pct"] <= 100.0
    assert set(r) == {"total_s", "steal_pct"}


def test_speedups_and_the_networks_alone() -> None:
    """Ratios from per-stage medians (the shipped model's bench.json at 30 s, rounded): with the
    Griffin-Lim decoder, shared code in both pipelines, the networks' ratio is added."""
    def row(text, gen, dec):
        return {"text_s": text, "generator_s": gen, "cascader_s": dec, "total_s": text + gen + dec}

    per = {"torch_eager": row(0.03, 3.78, 0.97), "ort_unfused": row(0.01, 2.75, 1.15),
           "ort_fused": row(0.01, 2.34, 0.98), "ort_fused_conv2d": row(0.01, 2.44, 1.03)}
    gl = bench.speedups(per, "griffin-lim")
    assert gl["speedup_fused_vs_eager"] == pytest.approx(4.78 / 3.33)
    assert gl["speedup_fused_vs_eager_networks"] == pytest.approx(3.81 / 2.35)
    assert gl["speedup_fused_vs_unfused"] == pytest.approx(3.91 / 3.33)
    assert gl["speedup_conv2d_vs_fused"] == pytest.approx(3.33 / 3.48)
    # with the diffusion cascader every stage is a network: no separate ratio
    assert "speedup_fused_vs_eager_networks" not in bench.speedups(per, "cascader")


def test_plot_writes_png(tmp_path: Path) -> None:
    stage = {"text_s": 0.1, "generator_s": 1.0, "cascader_s": 2.0, "total_s": 3.1, "x_realtime": 3.2}
    report = {"model": {"id": "m"}, "settings": {"steps": 25, "vocoder_steps": 12, "threads": 2},
              "cpu": {c: {b: stage for b in bench.BACKENDS} for c in ("10s", "30s")}}
    path = bench.plot(report, tmp_path / "b.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(report)


def test_cli_argument_errors(capsys) -> None:
    assert bench.main(["engine", "--model", "x"]) == 2
    assert "--checkpoints" in capsys.readouterr().err
    assert bench.main(["--tiny", "--repeats", "0"]) == 2


@pytest.mark.slow
def test_full_tiny_bench(tmp_path: Path) -> None:
    assert bench.main(["--tiny", "--out", str(tmp_path), "--repeats", "1", "--threads", "1"]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    for clip in ("10s", "30s"):
        for b in bench.BACKENDS:
            assert report["cpu"][clip][b]["total_s"] > 0
            assert 0.0 <= report["cpu"][clip][b]["steal_pct"] <= 100.0
    assert (tmp_path / "bench.png").is_file()
