"""`n2m corpus build`: plan, then compose/render/mix/cache shard by shard, resumably, in parallel.

A shard is a fixed block of SHARD_SIZE planned clips, built in DIR/shards/NNNNN.tmp and renamed to
DIR/shards/NNNNN when complete. A re-run with the same settings skips complete shards; a killed or
failed build loses at most the shards in flight.
"""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from n2m.bridge.controls import METERS, MODES, TONICS
from n2m.bridge.features import COARSE, FINE, MelSpec

from . import theory as th
from .captions import captions
from .compose import ClipPlan
from .plan import plan_corpus, split_for
from .progress import Progress
from .reader import FORMAT
from .styles import DEFS, STYLES

SHARD_SIZE = 24
GENERATOR_VERSION = 4  # bump when composition/rendering changes what a seed produces
BYTES_PER_AUDIO_SECOND = 150_000  # FLAC 44.1 kHz stereo + 16 kHz int16 + float16 mel, measured ~120 kB
BYTES_PER_FINE_SECOND = 95_000  # 44.1 kHz renders: float16 mid/side FINE mel (77 kB) + COARSE mel (15 kB)
BYTES_PER_HIRES_SECOND = 110_000  # --audio48k: + 48 kHz int16 mono, FLAC at 48 kHz


class BuildError(RuntimeError):
    """A build that cannot proceed; the message says why and what to do."""


@dataclass(frozen=True)
class BuildConfig:
    out: Path
    hours: float
    seed: int
    jobs: int = 1
    shard_size: int = SHARD_SIZE
    soundfonts: tuple[str, ...] = ()
    styles: tuple[str, ...] = STYLES
    max_shards: int | None = None  # build only the first N shards (tests, benchmarks)
    quiet: bool = False
    # render at 48 kHz (FLAC too) and keep the 48 kHz mono mix (audio48k.npy) beside the 16 kHz one:
    # the super-resolution stage's training targets
    audio48k: bool = False

    @property
    def render_rate(self) -> int:
        return 48000 if self.audio48k else 44100

    def validated(self) -> BuildConfig:
        if not isinstance(self.hours, int | float) or not np.isfinite(self.hours) or self.hours <= 0:
            raise BuildError(f"--hours must be a positive number of hours, got {self.hours!r}")
        if self.hours > 2000:
            raise BuildError(f"--hours {self.hours:g} is more than 2000 hours: that is surely a mistake")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise BuildError(f"--seed must be a whole number >= 0, got {self.seed!r}")
        if not 1 <= self.jobs <= 64:
            raise BuildError(f"--jobs must be from 1 to 64, got {self.jobs}")
        if not 1 <= self.shard_size <= 1000:
            raise BuildError(f"shard size must be from 1 to 1000, got {self.shard_size}")
        bad = [s for s in self.styles if s not in STYLES]
        if bad or not self.styles:
            raise BuildError(f"unknown styles {bad}: choose from {', '.join(STYLES)}")
        if self.out.exists() and not self.out.is_dir():
            raise BuildError(f"--out {self.out} exists and is not a directory")
        return self


@dataclass
class BuildSummary:
    clips: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    shards_built: int = 0
    shards_skipped: int = 0
    per_stage: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # one-line notices (e.g. optional soundfonts missing)

    @property
    def throughput(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


def corpus_id(cfg: BuildConfig) -> str:
    key = [GENERATOR_VERSION, cfg.seed, cfg.hours, cfg.shard_size, sorted(cfg.soundfonts), list(cfg.styles)]
    if cfg.audio48k:  # (corpora without it keep their ids)
        key.append("audio48k")
    h = hashlib.sha1(json.dumps(key).encode()).hexdigest()[:10]
    return f"n2m-synth-{h}"


def clip_meta(plan: ClipPlan) -> dict:
    """The metadata of a planned clip (without the array offsets, which the worker adds)."""
    st = DEFS[plan.style]
    programs = [p for _, p in plan.programs]
    return {
        "id": f"{plan.index:06d}-{plan.style}",
        "composition_id": plan.composition_id,
        "split": split_for(plan),
        "style": plan.style,
        "bpm": float(plan.bpm),
        "key": plan.key,
        "mode": plan.mode,
        "meter": plan.meter,
        "bars": plan.bars,
        "duration": round(plan.duration, 6),
        "instruments": [th.friendly(p) for p in programs]
        + ([th.kit_name(plan.drum_kit, plan.drum_soundfont)] if plan.drum_kit is not None and st.drums != "none"
           else []),
        "roles": [r for r, _ in plan.programs],
        "programs": programs,
        "drum_kit": plan.drum_kit if st.drums != "none" else None,
        "drum_soundfont": plan.drum_soundfont if st.drums != "none" else None,
        "soundfont": plan.soundfont,
        "seed": plan.seed,
        "energy": plan.energy,
        "dynamics": plan.dynamics,
        "mood": plan.mood,
        "era": plan.era,
        "sections": [list(s) for s in plan.sections],
        "score": plan.score,
        "captions": captions(plan),
    }


# ---- worker --------------------------------------------------------------------------------------

_WORKER: dict = {}


def _worker_init(queue: mp.Queue | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates us
    _WORKER.clear()
    _WORKER["queue"] = queue
    _WORKER["synths"] = {}


def _synth_for(name: str, rate: int = 44100):
    from .synth import Synth, soundfont_by_name

    synths = _WORKER.setdefault("synths", {})
    if (name, rate) not in synths:
        t0, c0 = time.perf_counter(), time.process_time()
        synths[(name, rate)] = Synth(soundfont_by_name(name), sample_rate=rate)
        _WORKER["load_seconds"] = _WORKER.get("load_seconds", 0.0) + time.perf_counter() - t0
        _WORKER["load_cpu_seconds"] = _WORKER.get("load_cpu_seconds", 0.0) + time.process_time() - c0
    return synths[(name, rate)]


class _ShardArrays:
    """A shard's clips concatenated: 16 kHz audio and 80-bin mel, the v2 FINE/COARSE caches, and
    the 48 kHz mono mix where kept; each clip's offsets go into its meta."""

    def __init__(self) -> None:
        self.mels, self.audios, self.hires, self.mids, self.sides, self.coarses = [], [], [], [], [], []
        self.mel_off = self.audio_off = self.hires_off = self.fine_off = self.coarse_off = 0

    def add(self, meta: dict, r) -> None:
        meta.update(mel_offset=self.mel_off, mel_frames=int(r.mel.shape[1]), audio_offset=self.audio_off,
                    audio_samples=int(r.mono16k.shape[0]))
        if r.fine is not None and r.coarse is not None:
            meta.update(fine_offset=self.fine_off, fine_frames=int(r.fine.shape[2]),
                        coarse_offset=self.coarse_off, coarse_frames=int(r.coarse.shape[1]))
            self.fine_off += r.fine.shape[2]
            self.coarse_off += r.coarse.shape[1]
            self.mids.append(r.fine[0].astype(np.float16))
            self.sides.append(r.fine[1].astype(np.float16))
            self.coarses.append(r.coarse.astype(np.float16))
        if r.mono_hires is not None:
            meta.update(audio48k_offset=self.hires_off, audio48k_samples=int(r.mono_hires.shape[0]))
            self.hires_off += r.mono_hires.shape[0]
            self.hires.append(r.mono_hires)
        self.mel_off += r.mel.shape[1]
        self.audio_off += r.mono16k.shape[0]
        self.mels.append(r.mel.astype(np.float16))
        self.audios.append(r.mono16k)

    def save(self, folder: Path) -> None:
        np.save(folder / "mel.npy", np.concatenate(self.mels, axis=1))
        np.save(folder / "audio16k.npy", np.concatenate(self.audios))
        if self.hires:
            np.save(folder / "audio48k.npy", np.concatenate(self.hires))
        if self.mids:
            np.save(folder / "mel_mid.npy", np.concatenate(self.mids, axis=1))
            np.save(folder / "mel_side.npy", np.concatenate(self.sides, axis=1))
            np.save(folder / "coarse.npy", np.concatenate(self.coarses, axis=1))


def _compose(plan: ClipPlan):
    """(the plan as composed, its parts): a score from the music21 corpus, or composed notes."""
    if plan.score is not None:
        from .scores import compose_score, resolve_score

        plan, score = resolve_score(plan)
        return plan, compose_score(plan, score)
    from .compose import Composer

    return plan, Composer(plan).compose()


def build_shard(shard_dir: str, plans: list[ClipPlan], audio48k: bool = False) -> dict:
    """Build one shard into shard_dir + '.tmp', then rename. Returns per-stage timings. With
    `audio48k` the clips render at 48 kHz and their 48 kHz mono mix is kept (audio48k.npy)."""
    import soundfile as sf

    from .render import render_clip

    final = Path(shard_dir)
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    metas, arrays = [], _ShardArrays()
    rate = 48000 if audio48k else 44100
    t_stage = {"compose": 0.0, "render": 0.0, "write": 0.0}
    queue, callback = _WORKER.get("queue"), _WORKER.get("callback")
    for plan in plans:
        t0 = time.perf_counter()
        plan, parts = _compose(plan)
        meta = clip_meta(plan)
        t1 = time.perf_counter()
        load0 = _WORKER.get("load_seconds", 0.0)
        synth = _synth_for(plan.soundfont, rate)
        loaded = _WORKER.get("load_seconds", 0.0) - load0
        t_stage["load soundfonts"] = t_stage.get("load soundfonts", 0.0) + loaded
        t1 += loaded
        r = render_clip(plan, parts, synth, DEFS[plan.style].mix, rate=rate, keep_hires=audio48k)
        t2 = time.perf_counter()
        meta["flac"] = f"{meta['id']}.flac"
        sf.write(str(tmp / meta["flac"]), r.stereo.T, rate, subtype="PCM_16")
        arrays.add(meta, r)
        meta.update(loudness_db=round(r.loudness_db, 2), notes=sum(len(p.notes) for p in parts))
        metas.append(meta)
        t_stage["compose"] += t1 - t0
        t_stage["render"] += t2 - t1
        t_stage["write"] += time.perf_counter() - t2
        if queue is not None:
            queue.put(("clip", plan.duration))
        elif callback is not None:
            callback(plan.duration)
    t0 = time.perf_counter()
    arrays.save(tmp)
    with open(tmp / "meta.jsonl", "w") as f:
        for m in metas:
            f.write(json.dumps(m) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    t_stage["write"] += time.perf_counter() - t0
    cpu_now = _WORKER.get("load_cpu_seconds", 0.0)
    t_stage["load soundfonts cpu"] = cpu_now - _WORKER.get("load_cpu_reported", 0.0)
    _WORKER["load_cpu_reported"] = cpu_now
    return {"shard": str(final), "clips": len(plans), "seconds": arrays.audio_off / 16000.0,
            "stages": t_stage}


# ---- driver --------------------------------------------------------------------------------------

def _check_existing(cfg: BuildConfig, info: dict) -> None:
    path = cfg.out / "corpus.json"
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BuildError(f"{path} is corrupt ({exc}): remove {cfg.out} or choose another --out") from exc
    if old.get("id") != info["id"]:
        raise BuildError(
            f"{cfg.out} holds another corpus ({old.get('id')}: seed {old.get('seed')}, hours "
            f"{old.get('hours')}); resuming needs the same settings. Use another --out or delete it.")


def _free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def _describe(cfg: BuildConfig, shards: list[list]) -> dict:
    """corpus.json: what the corpus is, from its config and plan."""
    info = {
        "id": corpus_id(cfg), "format": FORMAT, "generator_version": GENERATOR_VERSION,
        "seed": cfg.seed, "hours": cfg.hours, "mel": MelSpec().to_dict(), "audio_rate": 16000,
        "flac_rate": cfg.render_rate, "shard_size": cfg.shard_size, "shards": len(shards),
        "clips": sum(len(s) for s in shards), "planned_seconds": round(sum(p.duration for s in shards for p in s), 3),
        "styles": list(cfg.styles), "soundfonts": list(cfg.soundfonts),
        "programs": {str(i): n for i, n in enumerate(th.GM_NAMES)}, "drum_kits": th.DRUM_KITS,
        "tonics": list(TONICS), "modes": list(MODES), "meters": list(METERS),
        "splits": {"by": "composition_id", "percent": {"train": 90, "val": 5, "test": 5}},
    }
    if cfg.audio48k:
        info["audio48k_rate"] = 48000
    else:  # the v2 representations, cached per shard (mel_mid.npy, mel_side.npy, coarse.npy)
        info["fine_mel"] = FINE.to_dict()
        info["coarse_mel"] = COARSE.to_dict()
    return info


def _write_description(cfg: BuildConfig, info: dict, shards: list[list]) -> None:
    """corpus.json and eval_prompts.jsonl, each written to a temporary name and renamed."""
    from .prompts import eval_prompts

    cfg.out.mkdir(parents=True, exist_ok=True)
    _check_existing(cfg, info)
    (cfg.out / "shards").mkdir(exist_ok=True)
    tmp_info = cfg.out / "corpus.json.tmp"
    tmp_info.write_text(json.dumps(info, indent=1))
    os.replace(tmp_info, cfg.out / "corpus.json")
    train_caps = {c for s in shards for p in s for c in clip_meta(p)["captions"]}
    prompts = eval_prompts(cfg.seed, train_caps, cfg.styles)
    with open(cfg.out / "eval_prompts.jsonl.tmp", "w") as f:
        for p in prompts:
            f.write(json.dumps(p) + "\n")
    os.replace(cfg.out / "eval_prompts.jsonl.tmp", cfg.out / "eval_prompts.jsonl")


def _pending(cfg: BuildConfig, shards: list[list], summary: BuildSummary) -> list[tuple[str, list]]:
    """The shards still to build (complete ones are skipped: the build resumes), after a disk check."""
    todo = []
    for i, s in enumerate(shards):
        d = cfg.out / "shards" / f"{i:05d}"
        if (d / "meta.jsonl").is_file():
            summary.shards_skipped += 1
        else:
            todo.append((str(d), s))
    for stale in (cfg.out / "shards").glob("*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    need = sum(p.duration for _, s in todo for p in s) * (
        BYTES_PER_AUDIO_SECOND + (BYTES_PER_HIRES_SECOND if cfg.audio48k else BYTES_PER_FINE_SECOND))
    free = _free_bytes(cfg.out)
    if need > free:
        raise BuildError(f"not enough disk space in {cfg.out}: the remaining shards need about "
                         f"{need / 1e9:.1f} GB, {free / 1e9:.1f} GB free. Free space or build fewer --hours.")
    return todo


def _run_shards(cfg: BuildConfig, todo: list, progress: Progress, summary: BuildSummary, stages: dict) -> None:
    """Build the shards, in this process (--jobs 1) or a pool of workers."""
    if cfg.jobs == 1:
        _worker_init(None)
        _WORKER["callback"] = progress.update
        for d, s in todo:
            _account(summary, stages, build_shard(d, s, cfg.audio48k))
        return
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    with ctx.Pool(cfg.jobs, initializer=_worker_init, initargs=(queue,)) as pool:
        pending = [pool.apply_async(build_shard, (d, s, cfg.audio48k)) for d, s in todo]
        try:
            while pending:
                _drain(queue, progress, 0.2)
                for r in [r for r in pending if r.ready()]:
                    pending.remove(r)
                    _account(summary, stages, r.get())
            _drain(queue, progress, 0.0)
        except BaseException:
            pool.terminate()
            raise


def build(cfg: BuildConfig) -> BuildSummary:
    from .synth import missing_optional, require_soundfonts

    cfg = cfg.validated()
    note = missing_optional(list(cfg.soundfonts) or None)
    if note and not cfg.quiet:
        print(f"corpus: {note}", file=sys.stderr, flush=True)
    sfs = require_soundfonts(list(cfg.soundfonts) or None)
    cfg = BuildConfig(**{**asdict(cfg), "soundfonts": tuple(s.name for s in sfs)})
    plans = plan_corpus(cfg.seed, cfg.hours, list(cfg.soundfonts), cfg.styles)
    shards = [plans[i:i + cfg.shard_size] for i in range(0, len(plans), cfg.shard_size)]
    if cfg.max_shards is not None:
        shards = shards[: cfg.max_shards]
    _write_description(cfg, _describe(cfg, shards), shards)
    summary = BuildSummary(notes=[note] if note else [])
    todo = _pending(cfg, shards, summary)
    progress = Progress(sum(p.duration for _, s in todo for p in s), unit="s audio", quiet=cfg.quiet,
                        label=f"corpus {cfg.out.name}: {len(todo)} shards ({summary.shards_skipped} done)")
    t_start = time.perf_counter()
    stages: dict[str, float] = {}
    try:
        if todo:
            _run_shards(cfg, todo, progress, summary, stages)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise BuildError(f"disk full while writing {cfg.out}: free space, then run the same command "
                             f"again to resume ({summary.shards_built} new shards are complete)") from exc
        raise
    finally:
        _WORKER.pop("callback", None)
        progress.close()
        for stale in (cfg.out / "shards").glob("*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
    summary.wall_seconds = time.perf_counter() - t_start
    summary.per_stage = stages
    return summary


def _drain(queue, progress: Progress, timeout: float) -> None:
    import queue as q

    try:
        while True:
            kind, secs = queue.get(timeout=timeout)
            if kind == "clip":
                progress.update(secs)
            timeout = 0.0
    except q.Empty:
        return


def _account(summary: BuildSummary, stages: dict[str, float], res: dict) -> None:
    summary.clips += res["clips"]
    summary.audio_seconds += res["seconds"]
    summary.shards_built += 1
    for k, v in res["stages"].items():
        stages[k] = stages.get(k, 0.0) + v


def print_summary(s: BuildSummary, out: Path, file=sys.stdout) -> None:
    print(f"built {s.shards_built} shards ({s.clips} clips, {s.audio_seconds / 3600:.2f} h of audio) in "
          f"{s.wall_seconds:.1f} s: {s.throughput:.1f} s of finished audio per wall second; "
          f"{s.shards_skipped} shards were already complete. Corpus: {out}", file=file)
    for note in s.notes:
        print(f"note: {note}", file=file)
    if s.per_stage:
        tot = sum(s.per_stage.values()) or 1.0
        print("worker time by stage: " + ", ".join(f"{k} {v:.1f} s ({100 * v / tot:.0f}%)"
                                                   for k, v in s.per_stage.items()), file=file)
