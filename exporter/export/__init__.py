"""`n2m export`: training checkpoints -> an ONNX cascade folder with a manifest.

    n2m export --generator runs/gen/last.pt --vocoder runs/voc/last.pt --out bridge/models/NAME
    n2m export GEN.pt VOC.pt --out bridge/models/NAME        (stages recognised by their "stage")
    n2m export --wavegen W.pt --cascader C.pt [--superres S.pt] --out bridge/models/NAME

The first two give the "mel" route (text -> log-mel -> 16 kHz), the third the "wave" route (text ->
3.2 kHz audio -> 16 kHz); a superres checkpoint (16 kHz -> 48 kHz) may end either route, and the
manifest's `route`, stages and sample rate say which cascade the folder holds.

The folder holds the text encoder (MiniLM with ORT's BERT fusions) and its tokenizer.json, each
stage's fp32 graph (CPU), fp16 graph (CUDA) and, if it passes parity, an int8 MatMul-only graph
(CPU), and manifest.json with the sha256 and size of every file (bridge.manifest). The folder is
built beside the target and moved into place at the end, so an interrupted export leaves nothing
half-written.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import torch

from n2m.bridge.features import FINE, MelSpec
from n2m.bridge.manifest import (
    EXPORT_FLAGS,
    OPTIONAL_STAGES,
    ROUTES,
    FileEntry,
    GuidanceSpec,
    Manifest,
    StageSpec,
    TextEncoderSpec,
    model_id_for,
)
from n2m.bridge.sampling import SAMPLERS
from n2m.bridge.schedule import Schedule
from n2m.exporter.export import onnx_text, onnx_unet
from n2m.exporter.models.cascade import RouteDefaults, load_checkpoint, route_manifest, stage_spec

TEXT_FILE = "text_encoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
PARITY_FRAMES = (128, 256)


@dataclass
class ExportOptions(RouteDefaults):
    """What to export, beside the route's default steps, samplers and guidance (RouteDefaults)."""

    name: str | None = None
    variants: tuple[str, ...] = ("fp32", "fp16", "int8")
    int8_tolerance: float = 0.05  # max relative L2 error of one step's v for shipping int8
    fp32_tolerance: float = 1e-4  # max abs error vs torch for the fp32 graph
    tiny_text: bool = False  # tiny random BERT instead of MiniLM (test fixtures only)
    # reuse the text encoder and tokenizer of an exported model folder (verified against its
    # manifest) instead of exporting them again, e.g. a second route beside a shipped one
    text_from: str | Path | None = None
    conv2d: tuple[str, ...] = ()  # stages whose 1-D convs are saved as 2-D (exporter.onnx_layout)
    use_ema: bool = True
    force: bool = False
    seed: int = 0


Log = Callable[[str], None]


def random_checkpoint(stage: str, path: str | Path, seed: int = 0, config=None,
                      text_max_tokens: int = 40) -> Path:
    """A checkpoint with seeded random weights (every path live) in the training format:
    for test fixtures and benchmarks. `config` defaults to the tiny config of the stage."""
    from n2m.exporter.models.unet import TINY_CONFIGS, build_model

    if config is None:
        config = TINY_CONFIGS[stage]()
    torch.manual_seed(seed)
    model = onnx_unet.randomize_(build_model(config).eval(), seed)
    state = model.state_dict()
    ckpt = {
        "stage": stage, "config": asdict(config), "model": state, "ema": state, "step": 0,
        "schedule": Schedule().to_dict(), "mel": MelSpec().to_dict(), "mel_norm": config.mel_norm,
        "corpus_id": "random-weights", "text_encoder": onnx_text.ENCODER_ID,
        "text_max_tokens": text_max_tokens,
    }
    if stage != "generator":
        ckpt["audio_scale"] = float(config.audio_scale)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def _step_cost(session, model: torch.nn.Module, seconds: float = 2.0) -> float:
    """Milliseconds of one batch-1 step per second of audio (progress weighting only)."""
    stage = onnx_unet.stage_name(model)
    fps = FINE.frame_rate if stage == "spectral" else MelSpec().frame_rate
    m = model.cfg.frame_multiple if stage in (*onnx_unet.TEXT_STAGES, "spectral") else 1
    frames = int(np.ceil(seconds * fps / m)) * m
    feeds = {k: v.numpy() for k, v in onnx_unet.example_inputs(stage, model.cfg, 1, frames).items()}
    session.run(None, feeds)
    t0 = time.perf_counter()
    session.run(None, feeds)
    return (time.perf_counter() - t0) * 1000.0 / seconds


def _export_stage(name: str, model: torch.nn.Module, ckpt: dict, work: Path, opts: ExportOptions,
                  log: Log) -> tuple[StageSpec, list[str]]:
    fp32 = work / f"{name}.onnx"
    log(f"{name}: exporting ({sum(p.numel() for p in model.parameters()):,} parameters)")
    onnx_unet.export_stage(model, fp32, fused=True)
    if name in opts.conv2d:
        from n2m.exporter.export.onnx_layout import conv1d_as_conv2d

        proto, n_conv = conv1d_as_conv2d(onnx.load(str(fp32)))
        onnx.save(proto, str(fp32))
        log(f"{name}: {n_conv} convolutions saved as 2-D (NCHWc-eligible on ORT's CPU provider)")
    onnx_unet.check_fused(fp32, onnx_unet.attention_blocks(model))
    sess = onnx_unet.ort_session(fp32)
    worst = 0.0
    for frames in PARITY_FRAMES:
        p = onnx_unet.parity(model, sess, batch=2, frames=frames, tokens=16)
        worst = max(worst, p.max_abs)
    if worst > opts.fp32_tolerance:
        raise RuntimeError(f"{name}: fp32 ONNX differs from torch by {worst:.2e} "
                           f"(> {opts.fp32_tolerance:g}): not exporting a wrong graph")
    files = {"fp32": fp32.name}
    parity = {"fp32_max_abs": worst}
    log(f"{name}: fp32 parity max abs {worst:.2e}")
    if "fp16" in opts.variants:
        fp16 = onnx_unet.to_fp16(fp32, work / f"{name}.fp16.onnx")
        files["fp16"] = fp16.name
        try:  # ORT's CPU provider runs most fp16 ops: measure what we can here
            p = onnx_unet.parity(model, fp16, batch=2, frames=PARITY_FRAMES[0])
            parity["fp16_rel_l2_cpu"] = p.rel_l2
        except Exception as exc:  # noqa: BLE001 - a CPU kernel gap is not an export failure
            log(f"{name}: fp16 graph not runnable on CPU here ({type(exc).__name__}); CUDA only")
    if "int8" in opts.variants:
        int8 = onnx_unet.to_int8(fp32, work / f"{name}.int8.onnx")
        p = onnx_unet.parity(model, int8, batch=2, frames=PARITY_FRAMES[0])
        parity["int8_rel_l2"] = p.rel_l2
        if p.rel_l2 <= opts.int8_tolerance:
            files["int8"] = int8.name
            log(f"{name}: int8 relative error {p.rel_l2:.3f}: kept")
        else:
            int8.unlink()
            log(f"{name}: int8 relative error {p.rel_l2:.3f} > {opts.int8_tolerance}: not shipped")
    spec = stage_spec(name, model, ckpt, opts, onnx_unet.input_names(name), onnx_unet.OUTPUT,
                      files=files, step_cost=_step_cost(sess, model), parity=parity)
    return spec, list(files.values())


def corpus_mel_max(ckpt: dict, log: Log, fine: bool = False) -> float | None:
    """The largest log-mel value in the generator's training corpus (train split; with `fine`, of
    the FINE mid and side mel over its first 300 clips), or None when that corpus is not here."""
    corpus = (ckpt.get("train_config") or {}).get("corpus")
    if not corpus or not (Path(corpus) / "corpus.json").is_file():
        log(f"training corpus {corpus!r} not found: no mel clamp in the manifest (pass --mel-max)")
        return None
    from n2m.exporter.corpus.reader import CorpusReader

    reader = CorpusReader(corpus)
    clips = reader.clips("train")
    top = max(float(reader.fine(c).max()) if fine else float(reader.mel(c).max()) for c in clips[:300 if fine else None])
    log(f"mel clamp: {top:.2f} (the loudest log-mel of {corpus})")
    return round(top, 3)


def _classify(paths: list[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in paths:
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
        stage = ckpt.get("stage") if isinstance(ckpt, dict) else None
        if stage not in ALL_STAGES:
            raise ValueError(f"{p}: not a stage checkpoint (its 'stage' is {stage!r})")
        if stage in found:
            raise ValueError(f"two {stage} checkpoints given: {found[stage]} and {p}")
        found[stage] = Path(p)
    return found


ALL_STAGES = ("generator", "vocoder", "wavegen", "cascader", "superres", "spectral")


def route_of(stages: dict[str, str | Path]) -> str:
    """The route a set of stage checkpoints makes ("mel", "wave" or "fine"), or ValueError naming
    what is missing or mixed."""
    given = set(stages) - set(OPTIONAL_STAGES)
    complete = [r for r, names in ROUTES.items() if set(names) <= given]
    partial = [r for r, names in ROUTES.items() if given & set(names)]
    if len(complete) == 1 and given == set(ROUTES[complete[0]]):
        return complete[0]
    if complete or len({n for r in partial for n in ROUTES[r]} & given) > 2 or {"wavegen", "generator"} <= given:
        raise ValueError(f"stages {sorted(given)} mix routes (mel: generator, vocoder; wave: wavegen, cascader; "
                         "fine: generator, spectral): export one route per folder")
    if not partial or not given & {"generator", "wavegen"}:
        raise ValueError("no generator checkpoint: a cascade needs a route (pass --generator G.pt --vocoder "
                         "V.pt, --wavegen W.pt --cascader C.pt, or --generator G.pt --spectral S.pt)")
    options = " or ".join(" ".join(EXPORT_FLAGS[n] for n in ROUTES[r]) for r in partial)
    missing = [f"{ROUTES[r][1]}" + (f" ({r} route)" if len(partial) > 1 else "") for r in partial]
    raise ValueError(f"no {' or '.join(missing)} checkpoint: a cascade needs both (pass {options})")


def _copy_text_encoder(src: Path, work: Path, max_tokens: int, log: Log) -> TextEncoderSpec:
    """The text encoder and tokenizer of the model folder `src`, verified and copied into `work`."""
    man = Manifest.load(src)
    te = man.text_encoder
    if te.name != onnx_text.ENCODER_ID:
        raise ValueError(f"{src} has text encoder {te.name!r}; the stages were trained with {onnx_text.ENCODER_ID}")
    man.verify(src, [te.tokenizer, te.files["fp32"]])
    shutil.copy2(src / te.files["fp32"], work / TEXT_FILE)
    shutil.copy2(src / te.tokenizer, work / TOKENIZER_FILE)
    log(f"text encoder: reused from {src}")
    return TextEncoderSpec(name=te.name, files={"fp32": TEXT_FILE}, tokenizer=TOKENIZER_FILE,
                           max_tokens=max_tokens, hidden=te.hidden, random_weights=te.random_weights)


def export_cascade(generator: str | Path, vocoder: str | Path, out_dir: str | Path,
                   opts: ExportOptions | None = None, log: Log = print,
                   superres: str | Path | None = None) -> Manifest:
    """Export the mel route (generator, vocoder; optionally superres), the text encoder and the
    tokenizer into `out_dir` with a manifest."""
    stages = {"generator": generator, "vocoder": vocoder}
    if superres is not None:
        stages["superres"] = superres
    return export_route(stages, out_dir, opts, log)


def _load_route(checkpoints: dict[str, str | Path], opts: ExportOptions) -> tuple[str, list[str], dict]:
    """(route, stage names in order, {name: (model, checkpoint)}), or ValueError naming what does
    not fit together."""
    for s in (opts.sampler, opts.vocoder_sampler, opts.superres_sampler):
        if s not in SAMPLERS:
            raise ValueError(f"unknown sampler {s!r}: one of {', '.join(SAMPLERS)}")
    unknown = set(checkpoints) - set(ALL_STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}: one of {', '.join(ALL_STAGES)}")
    route = route_of(checkpoints)
    names = [*ROUTES[route], *(n for n in OPTIONAL_STAGES if n in checkpoints)]
    loaded: dict[str, tuple[torch.nn.Module, dict]] = {}
    for name in names:
        model, ckpt = load_checkpoint(checkpoints[name], opts.use_ema)
        if onnx_unet.stage_name(model) != name or ckpt.get("stage", name) != name:
            raise ValueError(f"{checkpoints[name]} is not a {name} checkpoint "
                             f"(it holds a {onnx_unet.stage_name(model)})")
        loaded[name] = (model, ckpt)
    gen_name, cas_name = ROUTES[route]
    gen_model, gen_ckpt = loaded[gen_name]
    cas_model, cas_ckpt = loaded[cas_name]
    want = "coarse" if route == "fine" else "mel"
    labels = {"coarse": "COARSE mel", "mel": "80-bin mel"}
    if route != "wave" and getattr(gen_model.cfg, "representation", "mel") != want:
        raise ValueError(f"{checkpoints[gen_name]} makes the {labels[gen_model.cfg.representation]}; the {route} "
                         f"route's {cas_name} takes the {labels[want]}")
    if route == "mel" and gen_ckpt.get("mel") and cas_ckpt.get("mel") and gen_ckpt["mel"] != cas_ckpt["mel"]:
        raise ValueError("generator and vocoder were trained on different mel front-ends")
    if route == "wave" and int(cas_model.cfg.cond_rate) != int(gen_model.cfg.sample_rate):
        raise ValueError(f"the cascader is conditioned on {cas_model.cfg.cond_rate} Hz audio, the wavegen "
                         f"makes {gen_model.cfg.sample_rate} Hz")
    cas_rate = float(cas_model.cfg.sample_rate) if route == "wave" else float(MelSpec(**cas_ckpt.get(
        "mel", MelSpec().to_dict())).sample_rate)
    if "superres" in loaded and int(loaded["superres"][0].cfg.cond_rate) != int(cas_rate):
        raise ValueError(f"the superres stage is conditioned on {loaded['superres'][0].cfg.cond_rate} Hz audio, "
                         f"the {cas_name} makes {cas_rate:g} Hz")
    return route, names, loaded


def _text_encoder(work: Path, opts: ExportOptions, max_tokens: int, log: Log) -> TextEncoderSpec:
    """MiniLM with ORT's BERT fusions and its tokenizer into `work` (or copied from opts.text_from)."""
    if opts.text_from is not None:
        return _copy_text_encoder(Path(opts.text_from), work, max_tokens, log)
    log("text encoder: exporting " + ("a tiny random BERT" if opts.tiny_text else onnx_text.ENCODER_ID))
    te = onnx_text.export_text_encoder(work / TEXT_FILE, work / TOKENIZER_FILE, tiny=opts.tiny_text, seed=opts.seed)
    fused = {k: te.op_counts.get(k, 0) for k in ("Attention", "SkipLayerNormalization", "BiasGelu",
                                                  "EmbedLayerNormalization")}
    log(f"text encoder: fused {fused}, parity max abs {te.max_abs_err:.2e}")
    if te.max_abs_err > 1e-3:
        raise RuntimeError(f"text encoder ONNX differs from torch by {te.max_abs_err:.2e}")
    return TextEncoderSpec(name=onnx_text.ENCODER_ID, files={"fp32": TEXT_FILE}, tokenizer=TOKENIZER_FILE,
                           max_tokens=max_tokens, hidden=te.hidden, random_weights=te.random_weights)


def export_route(checkpoints: dict[str, str | Path], out_dir: str | Path, opts: ExportOptions | None = None,
                 log: Log = print) -> Manifest:
    """Export a route's stages ({"generator", "vocoder"} or {"wavegen", "cascader"}, each optionally
    with "superres"), the text encoder and the tokenizer into `out_dir` with a manifest."""
    opts = opts or ExportOptions()
    route, names, loaded = _load_route(checkpoints, opts)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not opts.force:
        raise FileExistsError(f"{out_dir} exists and is not empty: pass --force to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        gen_ckpt = loaded[ROUTES[route][0]][1]
        te_spec = _text_encoder(work, opts, int(gen_ckpt.get("text_max_tokens", 40)), log)
        stages = {}
        listed = [TEXT_FILE, TOKENIZER_FILE]
        for name in names:
            model, ckpt = loaded[name]
            spec, files = _export_stage(name, model, ckpt, work, opts, log)
            stages[name] = spec
            listed += files
        entries = {rel: FileEntry.of(work / rel) for rel in listed}
        name = opts.name or out_dir.name
        sampling = replace(opts, mel_max=opts.mel_max if route == "wave" or opts.mel_max is not None
                           else corpus_mel_max(gen_ckpt, log, fine=route == "fine"))
        import onnxruntime
        import onnxscript

        manifest = route_manifest(
            route, names, loaded, stages, sampling, te_spec,
            model_id=model_id_for(name, entries), name=name, files=entries,
            created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            exporter={
                "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                "onnxscript": onnxscript.__version__, "opset": onnx_unet.OPSET_FUSED,
                "attention": "onnx Attention (opset 23)",
                "group_norm": "Reshape-InstanceNormalization-Reshape-Mul-Add",
                "conv_layout": {k: ("conv2d" if k in opts.conv2d else "conv1d") for k in names},
                **{f"{k}_step": int(loaded[k][1].get("step", 0)) for k in names},
            },
        )
        manifest.write(work)
        manifest.verify(work)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(work, out_dir)
        log(f"wrote {out_dir} ({manifest.model_id}, route {route}: {' -> '.join(names)}, {manifest.sample_rate} Hz)")
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="n2m export", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="*", help="stage checkpoints (recognised by their 'stage')")
    p.add_argument("--generator", help="generator checkpoint")
    p.add_argument("--vocoder", help="vocoder cascader checkpoint")
    p.add_argument("--wavegen", help="waveform generator checkpoint (wave route: 3.2 kHz audio)")
    p.add_argument("--cascader", help="wave route cascader checkpoint (3.2 kHz -> 16 kHz)")
    p.add_argument("--superres", help="super-resolution cascader checkpoint (16 kHz -> 48 kHz), mel or wave route")
    p.add_argument("--spectral", help="spectral cascader checkpoint (fine route: COARSE -> FINE mid + side mel)")
    p.add_argument("--out", required=True, help="model folder to write (e.g. bridge/models/NAME)")
    p.add_argument("--name", help="model name (default: the folder name)")
    p.add_argument("--variants", default="fp32,fp16,int8", help="comma list of fp32,fp16,int8")
    p.add_argument("--int8-tolerance", type=float, default=0.05)
    p.add_argument("--steps", type=int, default=25, help="default generator steps")
    p.add_argument("--sampler", default="dpmpp_2m", choices=sorted(SAMPLERS))
    p.add_argument("--vocoder-steps", type=int, default=12)
    p.add_argument("--vocoder-sampler", default="dpmpp_2m", choices=sorted(SAMPLERS))
    p.add_argument("--superres-steps", type=int, default=8)
    p.add_argument("--superres-sampler", default="dpmpp_2m", choices=sorted(SAMPLERS))
    p.add_argument("--cond-aug", type=float, default=0.1,
                   help="noise augmentation (diffusion time) of the audio cascaders' conditioning at run "
                        "time; capped at each stage's training aug_max")
    p.add_argument("--guidance", type=float, default=3.0, help="default guidance scale")
    p.add_argument("--edit-guidance", type=float, default=None,
                   help="default guidance scale of edits (extend, inpaint, vary); default: --guidance")
    p.add_argument("--side-guidance", type=float, default=None,
                   help="guidance scale of a side-band generator's side rows (the stereo image); default: the run's")
    p.add_argument("--guidance-envelope", type=float, default=1.0, metavar="SHARE",
                   help="the share of each row's mean over time that guidance extrapolates (0: the conditional pass's)")
    p.add_argument("--guidance-max", type=float, default=15.0)
    p.add_argument("--guidance-interval", default="0,1", metavar="LO,HI",
                   help="diffusion times (1 = noise) at which guidance runs; the conditional pass alone elsewhere")
    p.add_argument("--conv2d", default="", help="comma list of stages (e.g. generator,vocoder) whose 1-D "
                   "convolutions are saved as 2-D ones, for ORT's blocked NCHWc kernels (measure with n2m bench)")
    p.add_argument("--mel-max", type=float, help="clamp generated log-mels to this value before decoding "
                   "(default: the loudest log-mel of the generator's training corpus, when present)")
    p.add_argument("--decoder", default="vocoder", choices=["vocoder", "griffin-lim"],
                   help="the mel route's default decoder (the vocoder stage is exported either way; the "
                        "fine route always ends in Griffin-Lim)")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights, not the EMA")
    p.add_argument("--text-from", metavar="MODEL_DIR",
                   help="reuse the text encoder and tokenizer of an exported model folder")
    p.add_argument("--tiny-text", action="store_true",
                   help="tiny random BERT instead of MiniLM (test fixtures only)")
    p.add_argument("--force", action="store_true", help="replace an existing folder")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        found = _classify(args.checkpoints)
        for stage in ALL_STAGES:
            flag = getattr(args, stage)
            if flag:
                if stage in found:
                    raise ValueError(f"{stage} given twice: {found[stage]} and --{stage} {flag}")
                found[stage] = Path(flag)
        route_of(found)
        if args.steps < 1 or args.vocoder_steps < 1 or args.superres_steps < 1:
            raise ValueError("steps must be at least 1")
        if not 0.0 <= args.cond_aug <= 1.0:
            raise ValueError(f"--cond-aug {args.cond_aug} outside 0..1")
        for name, g in (("guidance", args.guidance), ("edit guidance", args.edit_guidance),
                        ("side guidance", args.side_guidance)):
            if g is not None and not 0.0 <= g <= args.guidance_max:
                raise ValueError(f"{name} {g} outside 0..{args.guidance_max}")
        try:
            lo, hi = (float(v) for v in args.guidance_interval.split(","))
        except ValueError:
            raise ValueError(f"--guidance-interval {args.guidance_interval!r}: give LO,HI such as 0.33,0.94") from None
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"--guidance-interval {args.guidance_interval}: need 0 <= LO < HI <= 1")
        if not 0.0 <= args.guidance_envelope <= 1.0:
            raise ValueError(f"--guidance-envelope {args.guidance_envelope} outside 0..1")
        variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
        if "fp32" not in variants or set(variants) - {"fp32", "fp16", "int8"}:
            raise ValueError(f"--variants must include fp32 and only fp32,fp16,int8: {args.variants}")
        opts = ExportOptions(
            name=args.name, variants=variants, int8_tolerance=args.int8_tolerance,
            tiny_text=args.tiny_text, text_from=args.text_from, steps=args.steps, sampler=args.sampler,
            vocoder_steps=args.vocoder_steps, vocoder_sampler=args.vocoder_sampler,
            superres_steps=args.superres_steps, superres_sampler=args.superres_sampler, cond_aug=args.cond_aug,
            guidance=GuidanceSpec(default=args.guidance, min=0.0, max=args.guidance_max, interval=(lo, hi),
                                  edit_default=args.edit_guidance, side=args.side_guidance,
                                  envelope=args.guidance_envelope),
            use_ema=not args.no_ema, force=args.force, decoder=args.decoder,
            conv2d=tuple(x for x in args.conv2d.split(",") if x), mel_max=args.mel_max)
        t0 = time.perf_counter()
        export_route(found, args.out, opts,
                     log=lambda m: print(f"[{time.perf_counter() - t0:6.1f}s] {m}", flush=True))
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        print(f"n2m export: {exc}", file=sys.stderr)
        return 2
    return 0
