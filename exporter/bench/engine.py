"""`n2m bench [engine]`: torch eager vs ONNX Runtime unfused vs ONNX Runtime fused, in one run.

    n2m bench --tiny --out runs/bench            # tiny random cascade (seconds)
    n2m bench --size default --out runs/bench    # the default-size U-Nets with random weights
    n2m bench --checkpoints GEN.pt VOC.pt        # trained weights
    n2m bench corpus ...                         # the corpus benchmark (n2m.exporter.corpus.bench)
    n2m bench routes MODEL [MODEL ...]           # exported cascades against each other (exporter.bench.routes)

Same weights, same steps, same sampler for every backend. The ORT backends run the real runtime
(`bridge.engine.Engine`) on two model folders that differ only in the U-Net graphs: "fused"
(opset 23 Attention, InstanceNorm GroupNorm: what `n2m export` ships) and "unfused" (opset 18
stock translation: MatMul/Softmax attention, decomposed GroupNorm). Torch eager runs the same
cascade code (bridge.cascade) over the checkpoints' torch modules (exporter.models.cascade).

Reported per backend and clip length (10 s and 30 s): per-stage and end-to-end seconds (medians
of interleaved repeats, the order rotated each repeat because the machine drifts), real-time
factor, achieved GFLOP/s per stage (conv/matmul/attention FLOPs counted by torch's FlopCounterMode)
beside a matmul peak measured in the same run, and the peak RSS of a runtime-only process (no
torch) generating a 30 s clip. On Linux each run also records the share of CPU time the
hypervisor stole from this machine while it ran (/proc/stat "steal"): on a shared virtual machine
that share swings between runs, and with it the seconds. CUDA figures are added when onnxruntime
has the CUDA provider. Writes bench.json and bench.png to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from n2m.exporter.bench.measure import (  # noqa: F401 - part of the bench's interface
    PROMPT,
    _cpu_ticks,
    _with_steal,
    matmul_peak_gflops,
    runtime_peak_rss,
    stage_flops,
)

CLIP_SECONDS = (10.0, 30.0)
BACKENDS = ("torch_eager", "ort_unfused", "ort_fused", "ort_fused_conv2d")


# ----------------------------------------------------------------------------- set-up


def _checkpoints(args, work: Path) -> tuple[Path, Path]:
    from n2m.exporter.export import random_checkpoint
    from n2m.exporter.models.unet import UNetConfig, VocoderConfig

    if args.checkpoints:
        return Path(args.checkpoints[0]), Path(args.checkpoints[1])
    if args.tiny:
        return (random_checkpoint("generator", work / "generator.pt", seed=0),
                random_checkpoint("vocoder", work / "vocoder.pt", seed=1))
    return (random_checkpoint("generator", work / "generator.pt", seed=0, config=UNetConfig()),
            random_checkpoint("vocoder", work / "vocoder.pt", seed=1, config=VocoderConfig()))


def _variant_dir(fused_dir: Path, out: Path, suffix: str, write_stage) -> Path:
    """A model folder beside the fused one: the same text encoder (linked), each U-Net stage
    written by `write_stage(stage_name, fused_graph_path, out_path)`, and a manifest for them."""
    from n2m.bridge.manifest import FileEntry, Manifest

    out.mkdir(parents=True, exist_ok=True)
    man = Manifest.load(fused_dir)
    for name in (man.text_encoder.files["fp32"], man.text_encoder.tokenizer):
        dst = out / name
        if not dst.exists():
            dst.symlink_to((fused_dir / name).resolve())
    for k, st in man.stages.items():
        write_stage(k, fused_dir / st.files["fp32"], out / f"{k}.onnx")
    stages = {k: replace(s, files={"fp32": f"{k}.onnx"}) for k, s in man.stages.items()}
    listed = [man.text_encoder.files["fp32"], man.text_encoder.tokenizer, *(f"{k}.onnx" for k in man.stages)]
    files = {rel: FileEntry.of(out / rel) for rel in listed}
    replace(man, model_id=f"{man.model_id}-{suffix}", stages=stages, files=files).write(out)
    return out


def _unfused_dir(fused_dir: Path, gen, voc, out: Path) -> Path:
    """A second model folder: the same text encoder, the U-Nets exported without fusions."""
    from n2m.exporter.export import onnx_unet

    models = {"generator": gen, "vocoder": voc}
    return _variant_dir(fused_dir, out, "unfused",
                        lambda k, src, dst: onnx_unet.export_stage(models[k], dst, fused=False))


def _conv2d_dir(fused_dir: Path, out: Path) -> Path:
    """A third model folder: the fused graphs with every 1-D Conv computed as a 2-D one, so ORT's
    NCHWc transformer can block them (exporter.onnx_layout)."""
    import onnx

    from n2m.exporter.export.onnx_layout import conv1d_as_conv2d

    def write(k: str, src: Path, dst: Path) -> None:
        onnx.save(conv1d_as_conv2d(onnx.load(str(src)))[0], str(dst))

    return _variant_dir(fused_dir, out, "conv2d", write)


# ----------------------------------------------------------------------------- runs


def torch_cascade(gen_ckpt: Path, voc_ckpt: Path, man, threads: int):
    """The checkpoints in torch eager through the runtime's cascade code, with the exported
    model's sampling settings and MiniLM in torch (transformers) encoding every prompt afresh."""
    import torch

    from n2m.exporter.models.cascade import RouteDefaults, checkpoint_cascade
    from n2m.exporter.textenc import TextEncoder

    torch.set_num_threads(threads)
    gen, voc = man.generator, man.vocoder
    opts = RouteDefaults(steps=gen.default_steps, sampler=gen.default_sampler, vocoder_steps=voc.default_steps,
                         vocoder_sampler=voc.default_sampler, guidance=gen.guidance, decoder=man.default_decoder,
                         mel_max=man.mel_max)
    text = TextEncoder(man.text_encoder.max_tokens).encode
    return checkpoint_cascade({"generator": gen_ckpt, "vocoder": voc_ckpt}, opts, threads, text=text)


def _torch_run(cascade, controls, seconds: float, seed: int, steps: int, guidance: float, sampler: str,
               decoder: str) -> dict[str, float]:
    """One clip of PROMPT through the torch cascade: text, generator, cascader and total seconds."""
    from n2m.bridge.cascade import Plan

    t0 = time.perf_counter()
    _, info = cascade.run(Plan(PROMPT, controls, seed, 1, steps, guidance, sampler, seconds, decoder))
    return {**{k: float(info[k]) for k in ("text_s", "generator_s", "cascader_s")},
            "total_s": time.perf_counter() - t0}


def _engine_run(engine, controls, seed: int) -> dict[str, float]:
    """One clip of PROMPT through the engine: text, generator and cascader seconds, superres and
    Griffin-Lim seconds where the model has them, and the end-to-end seconds."""
    from n2m.bridge.engine import Request

    t0 = time.perf_counter()
    clip = engine.generate(Request(PROMPT, controls, seed=seed))[0]
    total = time.perf_counter() - t0
    if not np.isfinite(clip.audio).all():
        raise RuntimeError(f"{engine.model_dir}: a clip has NaN or inf samples")
    keys = ("text_s", "generator_s", "cascader_s") + tuple(k for k in ("superres_s", "griffin_lim_s") if k in clip.info)
    return {**{k: float(clip.info[k]) for k in keys}, "total_s": total}


def speedups(per: dict, decoder: str) -> dict[str, float]:
    """End-to-end ratios between backends (per: backend -> median stage seconds). With the
    Griffin-Lim decoder, which is the same numpy code in both pipelines, also the ratio of the
    networks alone (text encoder + generator), fused against eager."""
    out = {"speedup_fused_vs_eager": per["torch_eager"]["total_s"] / per["ort_fused"]["total_s"],
           "speedup_fused_vs_unfused": per["ort_unfused"]["total_s"] / per["ort_fused"]["total_s"],
           "speedup_conv2d_vs_fused": per["ort_fused"]["total_s"] / per["ort_fused_conv2d"]["total_s"]}
    if decoder == "griffin-lim":
        nets = {b: per[b]["text_s"] + per[b]["generator_s"] for b in ("torch_eager", "ort_fused")}
        out["speedup_fused_vs_eager_networks"] = nets["torch_eager"] / nets["ort_fused"]
    return out


def _median(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _model_dirs(args, work: Path, gen, voc, gen_ckpt: Path, voc_ckpt: Path) -> tuple[Path, Path, Path]:
    """(fused, unfused, conv2d) model folders with the same weights and settings."""
    from n2m.exporter.export import ExportOptions, export_cascade

    fused_dir = Path(args.model) if args.model else work / "fused"
    if not args.model and (not (fused_dir / "manifest.json").is_file() or args.reexport):
        _log("exporting the fused cascade")
        export_cascade(gen_ckpt, voc_ckpt, fused_dir,
                       ExportOptions(force=True, variants=("fp32",), steps=args.steps,
                                     vocoder_steps=args.vocoder_steps), log=_log)
    _log("exporting the unfused U-Nets")
    unfused_dir = _unfused_dir(fused_dir, gen, voc, work / "unfused")
    return fused_dir, unfused_dir, _conv2d_dir(fused_dir, work / "conv2d")


def _cpu_results(man, engines: dict, eager, gen, voc, repeats: int) -> dict:
    """Per clip length: every backend's median stage seconds over interleaved, rotated repeats,
    with real-time factors, achieved GFLOP/s and the ratios between backends."""
    from n2m.bridge.controls import Controls

    steps = man.generator.default_steps
    voc_steps = man.vocoder.default_steps
    guidance = man.generator.guidance.default if man.generator.guidance else 1.0
    results: dict = {}
    for seconds in CLIP_SECONDS:
        controls = Controls(bpm=88.0, key="A", mode="minor", seconds=seconds)
        frames = engines["ort_fused"].frames_for(seconds)
        runs: dict[str, list] = {b: [] for b in BACKENDS}
        order = list(BACKENDS)
        for rep in range(repeats + 1):  # the first round is a warm-up, dropped
            for b in order:
                if b == "torch_eager":
                    r = _with_steal(_torch_run, eager, controls, seconds, 0, steps, guidance,
                                    man.generator.default_sampler, man.default_decoder)
                else:
                    r = _with_steal(_engine_run, engines[b], controls, 0)
                if rep > 0:
                    runs[b].append(r)
                stolen = f" ({r['steal_pct']:.0f}% stolen)" if "steal_pct" in r else ""
                _log(f"{seconds:.0f} s clip, repeat {rep}, {b}: {r['total_s']:.2f} s{stolen}")
            order = order[1:] + order[:1]
        flops = stage_flops(gen, voc, frames, tokens=16)
        rows = 2 if guidance != 1.0 else 1
        work_flops = {"generator": flops["generator"] * rows * steps, "vocoder": flops["vocoder"] * voc_steps}
        per = {}
        for b in BACKENDS:
            med = _median(runs[b])
            med["rtf"] = med["total_s"] / seconds
            med["x_realtime"] = seconds / med["total_s"]
            med["generator_gflops"] = work_flops["generator"] / med["generator_s"] / 1e9
            # Griffin-Lim runs no network: its FFTs are not counted, so no GFLOP/s is claimed for it
            med["cascader_gflops"] = (work_flops["vocoder"] / med["cascader_s"] / 1e9
                                      if man.default_decoder != "griffin-lim" else None)
            med["all_repeats_total_s"] = [r["total_s"] for r in runs[b]]
            per[b] = med
        per.update(speedups(per, man.default_decoder))
        per["gflop_per_step"] = {k: v / 1e9 for k, v in flops.items()}
        per["frames"] = frames
        results[f"{seconds:.0f}s"] = per
    return results


def _cuda_results(fused_dir: Path, repeats: int) -> dict:
    from n2m.bridge.controls import Controls
    from n2m.bridge.engine import Engine

    cuda = {}
    eng = Engine.load(fused_dir, provider="cuda")
    for seconds in CLIP_SECONDS:
        controls = Controls(seconds=seconds)
        _engine_run(eng, controls, 0)
        med = _median([_engine_run(eng, controls, 0) for _ in range(repeats)])
        med["x_realtime"] = seconds / med["total_s"]
        cuda[f"{seconds:.0f}s"] = med
    return cuda


def run_bench(args) -> dict:
    import onnxruntime as ort
    import torch

    from n2m.bridge.engine import Engine
    from n2m.bridge.manifest import Manifest
    from n2m.exporter.export import load_checkpoint

    work = Path(args.out) / "work"
    work.mkdir(parents=True, exist_ok=True)
    threads = args.threads
    gen_ckpt, voc_ckpt = _checkpoints(args, work)
    gen, _ = load_checkpoint(gen_ckpt)
    voc, _ = load_checkpoint(voc_ckpt)
    fused_dir, unfused_dir, conv2d_dir = _model_dirs(args, work, gen, voc, gen_ckpt, voc_ckpt)
    man = Manifest.load(fused_dir)
    engines = {"ort_fused": Engine.load(fused_dir, provider="cpu", threads=threads),
               "ort_unfused": Engine.load(unfused_dir, provider="cpu", threads=threads),
               "ort_fused_conv2d": Engine.load(conv2d_dir, provider="cpu", threads=threads)}
    peak = matmul_peak_gflops(threads)
    _log(f"matmul peak: torch {peak['torch_gflops']:.1f}, ORT {peak['ort_gflops']:.1f} GFLOP/s")
    results = _cpu_results(man, engines, torch_cascade(gen_ckpt, voc_ckpt, man, threads), gen, voc, args.repeats)
    _log("peak RSS of a runtime-only process (30 s clip)")
    rss = {"cpu": runtime_peak_rss(fused_dir, "cpu", threads)}
    cuda = None
    if "CUDAExecutionProvider" in ort.get_available_providers():
        cuda = _cuda_results(fused_dir, args.repeats)
        rss["cuda"] = runtime_peak_rss(fused_dir, "cuda", threads)
    gen_spec, voc_spec = man.generator, man.vocoder
    return {
        "model": {"id": man.model_id, "generator_params": gen_spec.params,
                  "vocoder_params": voc_spec.params,
                  "source": [f"{Path(c).parent.name}/{Path(c).name}" for c in args.checkpoints]
                  if args.checkpoints else ("tiny random" if args.tiny else "default-size random")},
        "settings": {"decoder": man.default_decoder, "threads": threads, "repeats": args.repeats,
                     "steps": gen_spec.default_steps, "sampler": gen_spec.default_sampler,
                     "guidance": gen_spec.guidance.default if gen_spec.guidance else 1.0,
                     "vocoder_steps": voc_spec.default_steps, "vocoder_sampler": voc_spec.default_sampler,
                     "prompt": PROMPT},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__, "onnxruntime": ort.__version__,
                    "providers": ort.get_available_providers()},
        "matmul_peak": peak,
        "cpu": results,
        "runtime_process": rss,
        "cuda": cuda,
    }


def plot(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips = list(report["cpu"])
    s = report["settings"]
    gl = s.get("decoder") == "griffin-lim"  # the decoder runs no network and no diffusion steps
    labels = {"text_s": "text", "generator_s": "generator", "cascader_s": "Griffin-Lim" if gl else "vocoder"}
    fig, axes = plt.subplots(1, len(clips) + 1, figsize=(5 * (len(clips) + 1), 4))
    colours = {"text_s": "#999999", "generator_s": "#4c72b0", "cascader_s": "#dd8452"}
    for ax, clip in zip(axes, clips, strict=False):
        res = report["cpu"][clip]
        bottom = np.zeros(len(BACKENDS))
        for key, colour in colours.items():
            vals = np.array([res[b][key] for b in BACKENDS])
            ax.bar(BACKENDS, vals, bottom=bottom, color=colour, label=labels[key])
            bottom += vals
        ax.set_title(f"{clip} clip: seconds per stage")
        ax.set_ylabel("wall seconds (median)")
        ax.tick_params(axis="x", rotation=15)
        ax.legend()
    ax = axes[-1]
    width = 0.8 / len(BACKENDS)
    x = np.arange(len(clips))
    for i, b in enumerate(BACKENDS):
        ax.bar(x + (i - (len(BACKENDS) - 1) / 2) * width, [report["cpu"][c][b]["x_realtime"] for c in clips], width, label=b)
    ax.set_xticks(x, clips)
    ax.set_title("times real time (higher is better)")
    ax.legend()
    decoder = "Griffin-Lim" if gl else f"{s['vocoder_steps']} vocoder steps"
    fig.suptitle(f"{report['model']['id']}: {s['steps']} generator steps + {decoder}, {s['threads']} threads")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="n2m bench [engine]", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--tiny", action="store_true", help="tiny random cascade")
    src.add_argument("--size", choices=["default"], help="default-size U-Nets with random weights")
    src.add_argument("--checkpoints", nargs=2, metavar=("GEN", "VOC"), help="trained checkpoints")
    p.add_argument("--model", help="an exported model folder of the same checkpoints (skips the export)")
    p.add_argument("--out", default="runs/bench", help="folder for bench.json, bench.png and work files")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=25, help="generator steps (when exporting)")
    p.add_argument("--vocoder-steps", type=int, default=12, help="cascader steps (when exporting)")
    p.add_argument("--reexport", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "corpus":
        from n2m.exporter.corpus.bench import main as corpus_main

        return int(corpus_main(argv[1:]) or 0)
    if argv and argv[0] == "routes":
        from n2m.exporter.bench.routes import main as routes_main

        return int(routes_main(argv[1:]) or 0)
    if argv and argv[0] == "engine":
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if args.model and not args.checkpoints and not args.tiny and not args.size:
        print("n2m bench: --model needs the checkpoints it was exported from (--checkpoints GEN VOC) "
              "so that torch eager runs the same weights", file=sys.stderr)
        return 2
    if args.repeats < 1:
        print("n2m bench: --repeats must be at least 1", file=sys.stderr)
        return 2
    report = run_bench(args)
    out = Path(args.out)
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out / "bench.png")
    for clip, res in report["cpu"].items():
        line = ", ".join(f"{b} {res[b]['total_s']:.2f} s ({res[b]['x_realtime']:.1f}x)" for b in BACKENDS)
        nets = (f" (the networks alone {res['speedup_fused_vs_eager_networks']:.2f}x)"
                if "speedup_fused_vs_eager_networks" in res else "")
        print(f"{clip}: {line}; fused vs eager {res['speedup_fused_vs_eager']:.2f}x{nets}")
    r = report["runtime_process"]["cpu"]
    print(f"runtime process, 30 s clip: {r['wall_30s_clip_s']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB")
    print(f"wrote {out / 'bench.json'} and {out / 'bench.png'}")
    return 0
