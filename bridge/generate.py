"""`n2m generate "PROMPT" [options]`: generate clips from the terminal with a progress bar.

    n2m generate "dusty boom-bap beat with rhodes chords" --bpm 88 --key "A minor" --bars 8 \
        --variations 2 --seed 7 --out clips/

Controls not given as options are parsed from the prompt ("92 bpm", "in F# minor", "3/4",
"8 bars"); options win. The model is bridge/models/default unless --model names another folder
under bridge/models/ or a path. Each clip goes through the clip pipeline (n2m.bridge.pipeline):
bar-exact length at the tempo (or, with --loop, a loop of whole bars the engine samples periodic),
fades, loudness normalisation, a true-peak limiter, resampling to --samplerate, and a tagged 24-bit
WAV (or 32-bit float WAV, or FLAC) with a JSON sidecar, written atomically. --raw writes the
engine's output untouched.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np

from n2m.bridge.clipfile import slug, write_clip
from n2m.bridge.engine import Cancelled, Engine, GeneratedClip, ModelError
from n2m.bridge.modelpath import DEFAULT_MODEL, resolve_model
from n2m.bridge.outdir import OutDirError, usable_dir
from n2m.bridge.pipeline import SAMPLE_RATES, PipelineOptions, process_clip
from n2m.bridge.request import RequestError, from_options

FORMATS = {"wav": "wav24", "wav32f": "wav32f", "flac": "flac"}  # --format -> pipeline format
RAW_FORMATS = {"wav": 3, "wav16": 2}  # --raw: bytes per sample of plain PCM WAV


def load_engine(name_or_dir: str | None, provider: str = "auto", threads: int | None = None,
                precision: str | None = None) -> Engine:
    return Engine.load(resolve_model(name_or_dir), provider=provider, threads=threads, precision=precision)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int, sample_bytes: int = 3) -> Path:
    """Plain PCM WAV (16- or 24-bit) of mono [n] or [channels, n] audio, written to a temporary
    name and renamed."""
    x = np.clip(np.nan_to_num(audio.astype(np.float64)), -1.0, 1.0)
    channels = 1 if x.ndim == 1 else x.shape[0]
    x = x.T.reshape(-1)  # interleaved frames
    full = float(2 ** (8 * sample_bytes - 1) - 1)
    ints = np.round(x * full).astype("<i4")
    if sample_bytes == 2:
        data = ints.astype("<i2").tobytes()
    else:
        data = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # little-endian low 3 bytes
    tmp = path.with_name(path.name + ".part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(sample_bytes)
        w.setframerate(int(sample_rate))
        w.writeframes(data)
    tmp.replace(path)
    return path


def _finish_clip(clip: GeneratedClip, out_dir: Path, args: argparse.Namespace, output: PipelineOptions) -> Path:
    """The clip pipeline call site: processed and written atomically, or raw with --raw."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.raw:
        path = out_dir / f"{slug(clip.prompt)}-s{clip.seed}.wav"
        if path.exists():
            raise FileExistsError(f"{path} exists; n2m never overwrites a clip")
        return write_wav(path, clip.audio, clip.sample_rate, RAW_FORMATS[args.format])
    processed = process_clip(clip, output)
    return write_clip(processed, out_dir).audio


class ProgressBar:
    """A one-line terminal bar fed by the engine's progress dicts."""

    def __init__(self, stream=None, width: int = 30, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width, self.enabled = width, enabled
        self.t0 = time.perf_counter()

    def __call__(self, e: dict) -> None:
        if not self.enabled:
            return
        frac = float(e["fraction"])
        fill = int(round(frac * self.width))
        bar = "#" * fill + "." * (self.width - fill)
        self.stream.write(f"\r[{bar}] {frac * 100:5.1f}% {e['stage']:<9} {e['step']}/{e['steps']} "
                          f"{time.perf_counter() - self.t0:6.1f}s")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="n2m generate", description="Generate music clips from a prompt.")
    p.add_argument("prompt", help='e.g. "dusty boom-bap beat with rhodes chords, 88 bpm, A minor"')
    p.add_argument("--bpm", type=float, help="tempo (overrides the prompt)")
    p.add_argument("--key", help='tonic, optionally with mode: "F#", "A minor", "Bbm"')
    p.add_argument("--mode", help="major, minor, dorian or mixolydian")
    p.add_argument("--meter", help="4/4, 3/4 or 6/8")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--bars", type=int, help="length in bars (at the tempo)")
    length.add_argument("--seconds", type=float, help="length in seconds")
    p.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    p.add_argument("--steps", type=int, help="generator sampling steps (default: the model's)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the model's)")
    p.add_argument("--sampler", help="ddim, dpmpp_2m or ancestral (default: the model's)")
    p.add_argument("--decoder", choices=["vocoder", "cascader", "griffin-lim"],
                   help="after the generator: the route's cascader stage (vocoder on the mel route, cascader "
                        "on the wave route) or griffin-lim on the mel route (default: the model's)")
    p.add_argument("--variations", type=int, default=1, help="clips to generate in one batch")
    p.add_argument("--out", default=".", help="output folder (default: current folder)")
    p.add_argument("--format", default="wav", choices=sorted(set(FORMATS) | set(RAW_FORMATS)),
                   help="wav = 24-bit PCM (default), wav32f = 32-bit float, flac; wav16 with --raw only")
    p.add_argument("--samplerate", type=int, default=48000, choices=SAMPLE_RATES, help="output rate (Hz)")
    p.add_argument("--lufs", type=float, default=-14.0, help="loudness target (LUFS, default -14)")
    p.add_argument("--loop", action="store_true",
                   help="make a seamless loop of whole bars, sampled periodic (the end flows into the start)")
    p.add_argument("--loop-crossfade", action="store_true",
                   help="a loop made the old way: a one-shot whose tail is crossfaded over its head (implies --loop)")
    p.add_argument("--raw", action="store_true",
                   help="write the engine's output untouched (model rate, no length/loudness processing)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model name under bridge/models/ or a folder")
    p.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"],
                   help="graphs to run (default: fp16 on CUDA, fp32 on CPU; int8 where the model has them)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _options(args: argparse.Namespace) -> dict:
    """The request's options, named as bridge.request names them."""
    return {"prompt": args.prompt, "bpm": args.bpm, "key": args.key, "mode": args.mode, "meter": args.meter,
            "bars": args.bars, "seconds": args.seconds, "seed": args.seed, "steps": args.steps,
            "guidance": args.guidance, "variations": args.variations, "sampler": args.sampler,
            "decoder": args.decoder, "loop": args.loop or args.loop_crossfade or None,
            "loop_crossfade": args.loop_crossfade or None, "samplerate": args.samplerate,
            "lufs": args.lufs}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.raw and args.format not in RAW_FORMATS:
            raise RequestError(f"--raw writes plain WAV: --format wav or wav16, not {args.format}")
        if not args.raw and args.format not in FORMATS:
            raise RequestError(f"--format {args.format} needs --raw")
        req = from_options(_options(args), output=PipelineOptions(format=FORMATS.get(args.format, "wav24")))
        out_dir = usable_dir(args.out, "--out")
    except (RequestError, OutDirError) as exc:
        print(f"n2m generate: {exc}", file=sys.stderr)
        return 2
    controls, seed = req.controls, req.seed
    try:
        engine = load_engine(args.model, args.provider, args.threads, args.precision)
    except (ModelError, ValueError) as exc:
        print(f"n2m generate: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, ModelError) else 2
    try:
        steps, guidance, sampler, seconds = engine.check(req)
    except RequestError as exc:
        print(f"n2m generate: {exc}", file=sys.stderr)
        return 2
    desc = ", ".join(f"{k} {v}" for k, v in controls.as_dict().items() if v is not None) or "no controls"
    print(f"{engine.model_id} on {engine.provider}: {seconds:.1f} s, {desc}; seed {seed}, "
          f"{steps} steps ({sampler}), guidance {guidance:g}", file=sys.stderr)
    bar = ProgressBar(enabled=not args.quiet)
    cancel = threading.Event()
    result: dict = {}

    def work() -> None:
        try:
            result["clips"] = engine.generate(req, progress=bar, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            result["error"] = exc

    t0 = time.perf_counter()
    worker = threading.Thread(target=work, name="n2m-generate", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        cancel.set()  # stops between steps
        worker.join()
    bar.done()
    err = result.get("error")
    if isinstance(err, Cancelled) or cancel.is_set():
        print("n2m generate: cancelled", file=sys.stderr)
        return 130
    if err is not None:
        if isinstance(err, RequestError):
            print(f"n2m generate: {err}", file=sys.stderr)
            return 2
        raise err
    wall = time.perf_counter() - t0
    for clip in result["clips"]:
        print(_finish_clip(clip, out_dir, args, req.output))
    total = seconds * len(result["clips"])
    print(f"{len(result['clips'])} clip(s), {total:.1f} s of audio in {wall:.1f} s "
          f"({total / wall:.1f}x real time)", file=sys.stderr)
    return 0
