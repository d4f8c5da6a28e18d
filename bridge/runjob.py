"""Running one daemon job: make its missing takes, send each through the clip pipeline, write and
record it, and say what happened. The daemon owns the queue; this owns one job's work (an edit's
work is in bridge/editjob.py, with the same progress events).

`restore_job` rebuilds a job a previous daemon accepted and never finished, with the takes it
already wrote, so only the missing ones are made.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from n2m.bridge import protocol as P
from n2m.bridge.clipfile import safe_name, write_clip
from n2m.bridge.job import Job
from n2m.bridge.library import Library
from n2m.bridge.pipeline import process_clip

Send = Callable[[str, list[Any]], None]  # (address, args) to the job's sender and the subscribers
SHUTDOWN = "the daemon shut down while the job was running"
GENERATION_SHARE = 0.9  # of a job's progress fraction; the clip pipeline and writing take the rest


class JobProgress:
    """A job's /n2m/progress events: the engine's stages over the first GENERATION_SHARE of the
    fraction, each take's own work (pipeline, write) over the rest."""

    def __init__(self, job: Job, send: Send) -> None:
        self.job, self.send = job, send

    def emit(self, stage: str, fraction: float, step: int = 0, steps: int = 0) -> None:
        self.send(P.PROGRESS, [self.job.id, stage, float(fraction), int(step), int(steps)])

    def engine(self, d: dict) -> None:
        """The engine's progress callback: its fraction covers generation, scaled to the whole job."""
        self.emit(str(d.get("stage", "generate")), GENERATION_SHARE * float(d.get("fraction", 0.0)),
                  int(d.get("step", 0)), int(d.get("steps", 0)))

    @staticmethod
    def after(share: float) -> float:
        return GENERATION_SHARE + (1.0 - GENERATION_SHARE) * share


def stopped(job: Job) -> tuple[str, str | None]:
    """The state of a job whose cancel was set: failed by a shutdown, else cancelled."""
    return ("failed", SHUTDOWN) if job.shutdown else ("cancelled", None)


def restore_job(row: dict[str, Any], library: Library) -> Job:
    """A job from its library row (see Library.recover); KeyError/TypeError/ValueError if damaged."""
    job = Job.from_record(row["id"], json.loads(row["request"]), float(row["created"]))
    library.adopt_job_files(job.id, job.out_dir)
    recs = library.job_clips(job.id)
    job.done = {r.idx for r in recs}
    job.clips = [r.path for r in recs]
    return job


def run_job(job: Job, engine: Any, library: Library, send: Send) -> tuple[str, str | None]:
    """Make the job's missing takes; returns its final (state, error)."""
    from n2m.bridge.engine import Cancelled

    library.set_job_state(job.id, "running")
    prog = JobProgress(job, send)
    prog.emit("queued", 0.0)
    req = job.request
    missing = [i for i in range(req.variations) if i not in job.done]
    if not missing:  # every take was written before a restart
        prog.emit("done", 1.0)
        return "finished", None
    first = missing[0]  # takes are written in order, so the missing ones are a tail
    tail = replace(req, seed=req.seed + first, variations=req.variations - first)
    try:
        clips = [replace(c, index=c.index + first)
                 for c in engine.generate(tail, progress=prog.engine, cancel=job.cancel)]
    except Cancelled:
        return stopped(job)
    except Exception as exc:
        return "failed", f"generation failed: {exc}"
    clips = [c for c in clips if c.index not in job.done]
    for i, clip in enumerate(clips):
        if job.cancel.is_set():
            return stopped(job)
        prog.emit("pipeline", prog.after(i / len(clips)))
        try:
            processed = process_clip(clip, req.output)
            prog.emit("write", prog.after((i + 0.5) / len(clips)))
            files = write_clip(processed, job.out_dir, name=req.name and safe_name(req.name), job_id=job.id)
            clip_id = library.add_clip(
                job_id=job.id, idx=processed.index, path=str(files.audio), sidecar=str(files.sidecar),
                prompt=processed.prompt, controls=processed.controls, seed=processed.seed,
                model=processed.model_id, samplerate=processed.sample_rate, bpm=processed.bpm,
                bars=processed.bars, duration=processed.duration, format=processed.format,
                created=files.metadata["created"])
        except Exception as exc:
            return "failed", f"clip pipeline failed: {exc}"
        job.clips.append(str(files.audio))
        job.done.add(processed.index)
        send(P.CLIP_READY, [job.id, str(files.audio), processed.sample_rate,
                            float(processed.bpm or 0.0), int(processed.bars or 0), clip_id])
    prog.emit("done", 1.0)
    return "finished", None
