"""What `n2m bench` measures beside seconds: the machine's matmul peak, the FLOPs of one forward
pass, the peak RSS of a runtime-only process, and the share of CPU time the hypervisor steals."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

PROMPT = "dusty boom-bap beat with rhodes chords, 88 bpm, A minor"


def matmul_peak_gflops(threads: int, n: int = 1024, repeats: int = 5) -> dict[str, float]:
    """fp32 GEMM GFLOP/s of torch and of ORT at this thread count (best of `repeats`)."""
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    out = {"torch_gflops": 2 * n**3 / best / 1e9}
    g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
                           helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])],
                          [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {"a": a.numpy(), "b": b.numpy()}
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        best = min(best, time.perf_counter() - t0)
    out["ort_gflops"] = 2 * n**3 / best / 1e9
    return out


def stage_flops(gen, voc, frames: int, tokens: int) -> dict[str, float]:
    """FLOPs of one forward pass, batch 1 (conv, matmul and attention ops)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from n2m.exporter.export import onnx_unet

    out = {}
    for name, model in (("generator", gen), ("vocoder", voc)):
        inputs = onnx_unet.example_inputs(name, model.cfg, batch=1, frames=frames, tokens=tokens)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(**inputs)
        out[name] = float(counter.get_total_flops())
    return out


# VmHWM of the child's own address space: ru_maxrss would carry over the forking parent's peak
# (torch loaded) across exec.
_RSS_SCRIPT = """
import sys, time
from n2m.bridge.controls import Controls
from n2m.bridge.engine import Engine, Request
e = Engine.load(sys.argv[1], provider=sys.argv[2], threads=int(sys.argv[3]))
t0 = time.perf_counter()
e.generate(Request("{prompt}", Controls(seconds=30.0), seed=0))
wall = time.perf_counter() - t0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(hwm, wall, "torch" in sys.modules)
""".replace("{prompt}", PROMPT)


def runtime_peak_rss(model_dir: Path, provider: str, threads: int) -> dict[str, float]:
    """Peak RSS of a fresh runtime-only process generating one 30 s clip."""
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(model_dir), provider, str(threads)],
                         capture_output=True, text=True, check=True)
    rss_kb, wall, torch_loaded = out.stdout.split()
    return {"peak_rss_mb": int(rss_kb) / 1024.0, "wall_30s_clip_s": float(wall),
            "torch_imported": torch_loaded == "True"}


def cold_generate_s(model_dir: Path, threads: int) -> float:
    """Wall seconds of a cold `n2m generate` process making one 30 s clip: interpreter start, model
    load and verification, generation, the clip pipeline and the file write, as a producer runs it."""
    import tempfile
    import time

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "n2m.bridge.cli", "generate", PROMPT, "--seconds", "30", "--seed", "0",
                        "--model", str(model_dir), "--provider", "cpu", "--threads", str(threads), "--out", out,
                        "--quiet"], capture_output=True, text=True, check=True)
        return time.perf_counter() - t0


def _cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs since boot from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[7], sum(ticks)


def _with_steal(run, *args) -> dict[str, float]:
    """run(*args) with a "steal_pct" key added: the share of CPU time stolen while it ran."""
    before = _cpu_ticks()
    r = run(*args)
    after = _cpu_ticks()
    if before is not None and after is not None and after[1] > before[1]:
        r["steal_pct"] = 100.0 * (after[0] - before[0]) / (after[1] - before[1])
    return r
