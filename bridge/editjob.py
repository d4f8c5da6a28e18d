"""The daemon's edits: /n2m/vary, /n2m/extend and /n2m/inpaint of a clip in the library (by its id)
or of a file (by its path), queued and run as jobs like /n2m/generate, through bridge/edit.py.

`edit_job` turns a request into a Job, or a RequestError before anything is queued (the checks of
`plan_edit` run up front); `run_edit_job` makes the job's missing takes, writes each at the
source's rate and channels in its lossless format, records it in the library with the edit and
the source, and announces it. The job's record keeps the source's path and the options as
resolved when it was accepted, so a restarted daemon makes the same takes.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from n2m.bridge import protocol as P
from n2m.bridge.cascade import Cancelled
from n2m.bridge.edit import (
    EditSpec,
    edit_meta,
    edit_spec,
    make_edit,
    plan_edit,
    read_source,
    source_options,
    write_edit,
)
from n2m.bridge.job import Job
from n2m.bridge.library import Library
from n2m.bridge.osc import Peer
from n2m.bridge.oscargs import EDIT_PARAMS, clip_dir, edit_options
from n2m.bridge.pipeline import FORMATS
from n2m.bridge.request import Request, RequestError, number
from n2m.bridge.runjob import JobProgress, Send, stopped

PASSED = ("steps", "guidance", "sampler", "decoder")  # options handed to the engine as given


def _source(source: int | str, library: Library) -> tuple[Path, int | None]:
    """The source's path and its library id (None for a file the library does not hold)."""
    if isinstance(source, int):
        rec = library.clip(source)
        if rec is None:
            raise RequestError(f"no clip with id {source} in the library (/n2m/clips lists them)")
        return Path(rec.path), rec.id
    rec = library.clip_by_path(source)
    return Path(source), None if rec is None else rec.id


def _options(kind: str, src: Any, kv: dict[str, Any]) -> dict[str, Any]:
    """The edit's request options: those given, else the source's (bridge.edit.source_options)."""
    bpm = number(kv["bpm"], "bpm") if "bpm" in kv else None
    opts = source_options(src, kv.get("prompt"), bpm, kv.get("key"))
    opts.update({k: kv[k] for k in ("mode", "meter", *PASSED) if k in kv})
    opts["seed"] = kv.get("seed", secrets.randbelow(2**31))
    if kind == "vary":
        opts["variations"] = kv.get("variations", 1)
    return opts


def _resolved(kind: str, req: Request) -> dict[str, Any]:
    """The options as the accepted request resolved them, to run again the same way after a restart."""
    c = req.controls
    opts = {"prompt": req.prompt, "bpm": c.bpm, "key": c.key, "mode": c.mode, "meter": c.meter, "seed": req.seed,
            **{k: getattr(req, k) for k in PASSED}}
    if kind == "vary":
        opts["variations"] = req.variations
    return {k: v for k, v in opts.items() if v is not None}


def edit_job(kind: str, args: list[Any], peer: Peer, engine: Any, library: Library, out_root: Path) -> Job:
    """A queued-to-be job for an edit request, or RequestError saying why it cannot be made."""
    source, kv = edit_options(kind, args)
    param = EDIT_PARAMS[kind][0]
    spec = edit_spec(kind, kv[param], param)
    fmt = kv.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise RequestError(f"format {fmt!r} not supported: one of {', '.join(FORMATS)} (default: the source's)")
    path, source_id = _source(source, library)
    src = read_source(path, max_seconds=engine.manifest.controls.seconds_range[1])
    req = plan_edit(engine, src, _options(kind, src, kv), spec)
    req = replace(req, tag=kv.get("tag", ""), folder=kv.get("dir")).validated()
    out_dir = clip_dir(out_root, req.folder)
    edit = {**asdict(spec), "source": str(path), "source_id": source_id, "format": fmt,
            "options": _resolved(kind, req)}
    return Job(id=uuid.uuid4().hex[:12], request=req, out_dir=out_dir, reply_to=peer, edit=edit)


def run_edit_job(job: Job, engine: Any, library: Library, send: Send) -> tuple[str, str | None]:
    """Make the edit job's missing takes; returns its final (state, error)."""
    library.set_job_state(job.id, "running")
    prog = JobProgress(job, send)
    prog.emit("queued", 0.0)
    e = job.edit
    spec = EditSpec(**{k: e.get(k) for k in ("kind", "bars", "first", "last", "strength")})
    takes = int(e["options"].get("variations", 1))
    missing = [i for i in range(takes) if i not in job.done]
    if not missing:  # every take was written before a restart
        prog.emit("done", 1.0)
        return "finished", None
    first = missing[0]  # takes are written in order, so the missing ones are a tail
    tail = {**e["options"], "seed": e["options"]["seed"] + first}
    if spec.kind == "vary":
        tail["variations"] = takes - first
    try:
        src = read_source(e["source"])
        results = make_edit(engine, src, tail, spec, prog.engine, job.cancel)
    except Cancelled:
        return stopped(job)
    except RequestError as exc:
        return "failed", f"the edit cannot be made: {exc}"
    except Exception as exc:
        return "failed", f"the edit failed: {exc}"
    for i, audio in enumerate(results):
        if job.cancel.is_set():
            return stopped(job)
        index = first + i
        prog.emit("write", prog.after(i / len(results)))
        meta = {**edit_meta(spec, e["options"], index, str(engine.model_id)), "job_id": job.id,
                "source_id": e.get("source_id")}
        try:
            files = write_edit(audio, src, job.out_dir, f"{spec.kind}{index + 1}-{job.id}", meta, e.get("format"))
            clip_id = library.add_from_sidecar(files.audio, files.sidecar, files.metadata)
        except Exception as exc:
            return "failed", f"writing the edit failed: {exc}"
        job.clips.append(str(files.audio))
        job.done.add(index)
        send(P.CLIP_READY, [job.id, str(files.audio), src.rate, float(meta.get("bpm") or 0.0),
                            int(files.metadata.get("length_bars") or 0), clip_id])
    prog.emit("done", 1.0)
    return "finished", None
