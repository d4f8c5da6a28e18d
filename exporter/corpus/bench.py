"""`n2m bench corpus`: seconds of finished audio (rendered, mixed, features cached, written) per
wall second, for a fresh build in a scratch directory.

The machine is shared, so the result also reports the load average and the CPU time the build's
processes used: audio seconds per CPU second x cores is what the same build reaches on idle cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .build import BuildConfig, BuildError, build
from .synth import SynthError


def _cpu_seconds() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="n2m bench corpus", description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=0.15, help="audio to build (default 0.15 h = 9 min)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--json", type=Path, default=Path("runs/bench/corpus.json"))
    ap.add_argument("--keep", type=Path, default=None, help="build here and keep it (default: a temp dir)")
    args = ap.parse_args(argv)
    if not 0 < args.hours <= 10 or not 1 <= args.jobs <= 64:
        print("n2m bench corpus: --hours must be in (0, 10] and --jobs in 1..64", file=sys.stderr)
        return 2
    out = args.keep or Path(tempfile.mkdtemp(prefix="n2m-bench-corpus-"))
    load0 = os.getloadavg()
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    try:
        s = build(BuildConfig(out=out, hours=args.hours, seed=args.seed, jobs=args.jobs))
    except (BuildError, SynthError) as exc:
        print(f"n2m bench corpus: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep is None:
            shutil.rmtree(out, ignore_errors=True)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    load1 = os.getloadavg()
    cores = os.cpu_count() or 1
    res = {
        "audio_seconds": round(s.audio_seconds, 2), "wall_seconds": round(wall, 2), "clips": s.clips,
        "jobs": args.jobs, "cores": cores,
        "throughput_audio_s_per_wall_s": round(s.audio_seconds / wall, 2),
        "cpu_seconds": round(cpu, 2),
        "throughput_per_cpu_s": round(s.audio_seconds / cpu, 2) if cpu > 0 else None,
        "idle_machine_estimate": round(min(args.jobs, cores) * s.audio_seconds / cpu, 2) if cpu > 0 else None,
        "soundfont_load_seconds": round(s.per_stage.get("load soundfonts", 0.0), 2),
        "soundfont_load_cpu_seconds": round(s.per_stage.get("load soundfonts cpu", 0.0), 2),
        "steady_state_idle_estimate": round(min(args.jobs, cores) * s.audio_seconds
                                            / max(cpu - s.per_stage.get("load soundfonts cpu", 0.0), 1e-9), 2)
        if cpu > 0 else None,
        "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in load1],
        "stages_worker_seconds": {k: round(v, 2) for k, v in s.per_stage.items()},
        "target": 40.0,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1))
    print(f"corpus build: {res['audio_seconds']:.0f} s of audio in {wall:.1f} s wall = "
          f"{res['throughput_audio_s_per_wall_s']:.1f} s/s (target 40) with {args.jobs} jobs; "
          f"{cpu:.1f} CPU s used = {res['throughput_per_cpu_s']} s of audio per CPU second, so about "
          f"{res['idle_machine_estimate']} s/s on {min(args.jobs, cores)} idle cores "
          f"({res['steady_state_idle_estimate']} s/s once the soundfonts are loaded: "
          f"{res['soundfont_load_cpu_seconds']} CPU s of loading). "
          f"Load average before {load0[0]:.1f}, after {load1[0]:.1f}. JSON: {args.json}")
    return 0
