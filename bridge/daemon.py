"""`n2m serve`: the OSC daemon that keeps the cascade loaded and turns requests into clips.

    n2m serve [--host H] [--port P] [--model NAME|DIR] [--allow-remote] [--queue N]
              [--library PATH] [--out DIR] [--grace S]

One selector thread serves OSC (UDP up to 64 KiB and TCP with OSC 1.0 framing, same port); one
worker thread runs jobs from a bounded queue through the engine and the clip pipeline, records them
in the clip library and announces them. Every request gets an answer: a reply, or /n2m/error with
the reason. The namespace is in n2m.bridge.protocol and docs/osc.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import sqlite3
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from pythonosc.osc_message import OscMessage

from n2m.bridge import __version__
from n2m.bridge import protocol as P
from n2m.bridge.clipfile import safe_name, write_clip
from n2m.bridge.controls import METERS, ControlError, Controls, normalize_meter
from n2m.bridge.job import Job
from n2m.bridge.library import Library, default_clips_dir, default_library_path
from n2m.bridge.manifest import ModelError
from n2m.bridge.modelpath import resolve_model
from n2m.bridge.osc import OscParseError, OscServer, Peer, is_loopback
from n2m.bridge.oscargs import generate_options, safe_subdir
from n2m.bridge.outdir import OutDirError, usable_dir
from n2m.bridge.pipeline import FORMATS, SAMPLE_RATES, PipelineError, PipelineOptions, process_clip
from n2m.bridge.request import RequestError, from_options, number, whole

MAX_SUBSCRIBERS = 32


class BindRefused(ValueError):
    """A bind address the daemon will not use without an explicit flag."""


class EngineLike(Protocol):
    """What the daemon needs of n2m.bridge.engine.Engine."""

    model_id: str
    sample_rate: int

    def generate(self, request: Any, progress: Callable[[dict], None] | None = None,
                 cancel: threading.Event | None = None) -> list[Any]: ...


def check_bind(host: str, allow_remote: bool) -> None:
    if not is_loopback(host) and not allow_remote:
        raise BindRefused(
            f"refusing to listen on {host}: n2m serve binds to loopback (127.0.0.1) unless you pass "
            "--allow-remote, because anyone who can reach the port can make the daemon write files")


@dataclass(frozen=True)
class DaemonConfig:
    host: str = P.DEFAULT_HOST
    port: int = P.DEFAULT_PORT
    allow_remote: bool = False
    queue_size: int = P.DEFAULT_QUEUE
    library_path: Path = field(default_factory=default_library_path)
    out_dir: Path = field(default_factory=default_clips_dir)
    sample_rate: int = 48000
    format: str = "wav24"
    target_lufs: float = -14.0
    shutdown_grace: float = 30.0  # seconds a job in flight may take to finish on shutdown
    tcp: bool = True


class Daemon:
    def __init__(self, engine: EngineLike, config: DaemonConfig, library: Library) -> None:
        check_bind(config.host, config.allow_remote)
        if config.queue_size < 1:
            raise ValueError("the queue must hold at least one job")
        self.engine = engine
        self.config = config
        self.library = library
        self.server: OscServer | None = None
        self.tempo: float | None = None
        self.meter: str | None = None
        self.sample_rate: int | None = None
        self._queue: collections.deque[Job] = collections.deque()
        self._jobs: dict[str, Job] = {}
        self._recent: collections.deque[str] = collections.deque(maxlen=200)
        self._running: Job | None = None
        self._cond = threading.Condition()
        self._accepting = True
        self._stopping = False
        self._held = threading.Event()
        self._held.set()  # set = the worker may take jobs
        self._subscribers: list[Peer] = []
        self._sub_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self.counters = collections.Counter()
        self._handlers: dict[str, Callable[[list[Any], Peer], None]] = {
            P.TEST: self._on_test, P.GENERATE: self._on_generate, P.CANCEL: self._on_cancel,
            P.STATUS: self._on_status, P.SUBSCRIBE: self._on_subscribe,
            P.UNSUBSCRIBE: self._on_unsubscribe, P.SET_TEMPO: self._on_set_tempo,
            P.SET_METER: self._on_set_meter, P.SET_SAMPLERATE: self._on_set_samplerate,
            P.CLIPS: self._on_clips, P.CLIP_FAVOURITE: self._on_clip_favourite,
            P.CLIP_DELETE: self._on_clip_delete,
        }

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> int:
        usable_dir(self.config.out_dir, "--out")
        self.server = OscServer(self.config.host, self.config.port, self.handle, tcp=self.config.tcp)
        self.server.start()
        self._worker = threading.Thread(target=self._work, name="n2m-worker", daemon=True)
        self._worker.start()
        return self.server.port

    def hold(self) -> None:
        """Stop taking new jobs from the queue (the one in flight continues). For maintenance and tests."""
        self._held.clear()

    def release(self) -> None:
        self._held.set()
        with self._cond:
            self._cond.notify_all()

    def resume(self, rows: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[str]:
        """Queue again the jobs a previous daemon accepted and never finished (library rows from
        `Library.recover`), oldest first, under their own ids; clips they already wrote are kept
        and only the missing variations are made. A damaged record fails its job. Returns the ids."""
        ids = []
        for row in rows:
            try:
                job = Job.from_record(row["id"], json.loads(row["request"]), float(row["created"]))
            except (KeyError, TypeError, ValueError) as exc:
                self.library.set_job_state(row["id"], "failed", f"its stored request cannot be read ({exc})")
                continue
            self.library.adopt_job_files(job.id, job.out_dir)
            recs = self.library.job_clips(job.id)
            job.done = {r.idx for r in recs}
            job.clips = [r.path for r in recs]
            with self._cond:
                self._queue.append(job)
                self._jobs[job.id] = job
                self._recent.append(job.id)
                self._cond.notify_all()
            ids.append(job.id)
        return ids

    def stop(self, grace: float | None = None) -> None:
        """Refuse new jobs, fail the queued ones, let the job in flight finish for `grace` seconds
        (then cancel it and mark it failed), and close."""
        grace = self.config.shutdown_grace if grace is None else grace
        with self._cond:
            self._accepting = False
            queued = list(self._queue)
            self._queue.clear()
        for job in queued:
            self._finish(job, "failed", "the daemon shut down before the job started")
        self._held.set()
        deadline = time.monotonic() + grace
        with self._cond:
            while self._running is not None and time.monotonic() < deadline:
                self._cond.wait(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
            if self._running is not None:
                self._running.shutdown = True
                self._running.cancel.set()
            self._stopping = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=60)
        if self.server is not None:
            self.server.close()

    # -- sending ---------------------------------------------------------------------------------
    def _send(self, peer: Peer, address: str, args: list[Any]) -> None:
        if self.server is not None:
            self.server.send(peer, address, args)

    def _broadcast(self, sender: Peer | None, address: str, args: list[Any]) -> None:
        """To the sender and every subscriber, once each."""
        with self._sub_lock:
            targets = list(self._subscribers)
        if sender is not None and sender not in targets:
            targets.insert(0, sender)
        for t in targets:
            self._send(t, address, args)

    def _error(self, peer: Peer, message: str, job_id: str = "", broadcast: bool = False) -> None:
        self.counters["errors"] += 1
        if broadcast:
            self._broadcast(peer, P.ERROR, [job_id, message])
        else:
            self._send(peer, P.ERROR, [job_id, message])

    # -- dispatch ----------------------------------------------------------------------------------
    def handle(self, item: OscMessage | OscParseError, peer: Peer) -> None:
        if isinstance(item, OscParseError):
            self.counters["malformed"] += 1
            self._error(peer, f"malformed OSC packet: {item}")
            return
        self.counters["messages"] += 1
        handler = self._handlers.get(item.address)
        if handler is None:
            self._error(peer, f"unknown address {item.address[:100]!r}: see docs/osc.md for the /n2m namespace")
            return
        try:
            handler(list(item.params), peer)
        except (RequestError, ControlError, PipelineError) as exc:
            self._error(peer, f"{item.address}: {exc}")
        except Exception as exc:  # a bug in a handler answers the request instead of going silent
            traceback.print_exc()
            self._error(peer, f"{item.address}: internal error: {exc}")

    # -- handlers ----------------------------------------------------------------------------------
    def _on_test(self, args: list[Any], peer: Peer) -> None:
        self._send(peer, P.TEST, ["ok", __version__, str(self.engine.model_id)])

    def _parse_generate(self, args: list[Any], peer: Peer) -> Job:
        output = PipelineOptions(sample_rate=self.sample_rate or self.config.sample_rate,
                                 format=self.config.format, target_lufs=self.config.target_lufs)
        request = from_options(generate_options(args), song=Controls(bpm=self.tempo, meter=self.meter),
                               output=output)
        if request.name is not None:
            try:
                safe_name(request.name)
            except PipelineError as exc:
                raise RequestError(str(exc)) from None
        out_dir = self.config.out_dir if request.folder is None else safe_subdir(self.config.out_dir, request.folder)
        try:
            usable_dir(out_dir, "clip folder")
        except OutDirError as exc:
            raise RequestError(str(exc)) from None
        return Job(id=uuid.uuid4().hex[:12], request=request, out_dir=out_dir, reply_to=peer)

    def _on_generate(self, args: list[Any], peer: Peer) -> None:
        job = self._parse_generate(args, peer)
        check = getattr(self.engine, "check", None)
        if callable(check):  # the engine's own limits (steps, guidance, duration, sampler) up front
            try:
                check(job.request)
            except ValueError as exc:
                raise RequestError(str(exc)) from None
        with self._cond:
            if not self._accepting:
                raise RequestError("the daemon is shutting down; no new jobs")
            if len(self._queue) >= self.config.queue_size:
                self.counters["rejected_full"] += 1
                raise RequestError(
                    f"the queue is full ({self.config.queue_size} jobs waiting); the request was not "
                    "queued: send it again when a job finishes, or cancel one")
            r = job.request
            self.library.add_job(job.id, r.prompt, r.controls.as_dict(), r.seed, str(self.engine.model_id),
                                 request=job.record())
            self._queue.append(job)
            self._jobs[job.id] = job
            self._recent.append(job.id)
            while len(self._jobs) > 400:  # forget the oldest finished jobs (the library keeps them)
                old = next(iter(self._jobs))
                if self._jobs[old].state in {"queued", "running"}:
                    break
                del self._jobs[old]
            self.counters["accepted"] += 1
            # announced under the lock, so /n2m/job reaches the sender before any of its progress
            self._broadcast(peer, P.JOB, [job.id])
            self._cond.notify_all()

    def _on_cancel(self, args: list[Any], peer: Peer) -> None:
        if len(args) != 1 or not isinstance(args[0], str):
            raise RequestError("usage: /n2m/cancel job-id")
        with self._cond:
            job = self._jobs.get(args[0])
            if job is None:
                raise RequestError(f"no job {args[0][:40]!r}")
            if job in self._queue:
                self._queue.remove(job)
                queued = True
            elif job.state == "running":
                job.cancel.set()
                queued = False
            else:
                raise RequestError(f"job {job.id} is already {job.state}")
        if queued:
            self._finish(job, "cancelled", "cancelled before it started")

    def _on_status(self, args: list[Any], peer: Peer) -> None:
        if args:
            jid = str(args[0])
            job = self._jobs.get(jid)
            if job is not None:
                self._send(peer, P.STATUS, [json.dumps(job.summary())])
                return
            row = self.library.job(jid)
            if row is None:
                raise RequestError(f"no job {jid[:40]!r}")
            row["controls"] = json.loads(row["controls"])
            self._send(peer, P.STATUS, [json.dumps(row)])
            return
        with self._cond:
            running = self._running.id if self._running else None
            queued = [j.id for j in self._queue]
        with self._sub_lock:
            nsubs = len(self._subscribers)
        status = {
            "version": __version__, "model": str(self.engine.model_id), "state": "busy" if running else "idle",
            "running": running, "queued": queued, "queue_size": self.config.queue_size,
            "tempo": self.tempo, "meter": self.meter, "samplerate": self.sample_rate or self.config.sample_rate,
            "subscribers": nsubs, "out_dir": str(self.config.out_dir),
            "recent": {j: self._jobs[j].state for j in list(self._recent)[-20:] if j in self._jobs},
        }
        self._send(peer, P.STATUS, [json.dumps(status)])

    def _subscriber(self, args: list[Any], peer: Peer) -> Peer:
        if not 1 <= len(args) <= 3:
            raise RequestError("usage: /n2m/subscribe host port [udp|tcp]")
        if len(args) == 1:  # just a port: the sender's host
            host, port, proto = peer.host, args[0], "udp"
        else:
            host, port = str(args[0]), args[1]
            proto = str(args[2]).lower() if len(args) == 3 else "udp"
        port = whole(port, "port", 1, 65535)
        if proto not in {"udp", "tcp"}:
            raise RequestError(f"protocol {proto!r}: udp or tcp")
        if host == "localhost":
            host = "127.0.0.1"
        if not re.fullmatch(r"[0-9A-Fa-f:.]+", host):
            raise RequestError(f"host {host[:60]!r} must be an IP address")
        if not is_loopback(host) and not self.config.allow_remote:
            raise RequestError(f"host {host} is not loopback: the daemon sends only to loopback without --allow-remote")
        return Peer(proto, host, int(port))

    def _on_subscribe(self, args: list[Any], peer: Peer) -> None:
        sub = self._subscriber(args, peer)
        with self._sub_lock:
            if sub not in self._subscribers:
                if len(self._subscribers) >= MAX_SUBSCRIBERS:
                    raise RequestError(f"too many subscribers (at most {MAX_SUBSCRIBERS})")
                self._subscribers.append(sub)
        self._send(peer, P.SUBSCRIBE, [sub.host, sub.port, sub.proto])
        if sub != peer:  # the new subscriber hears the acknowledgement too
            self._send(sub, P.SUBSCRIBE, [sub.host, sub.port, sub.proto])

    def _on_unsubscribe(self, args: list[Any], peer: Peer) -> None:
        sub = self._subscriber(args, peer)
        with self._sub_lock:
            if sub not in self._subscribers:
                raise RequestError(f"{sub} is not subscribed")
            self._subscribers.remove(sub)
        self._send(peer, P.UNSUBSCRIBE, [sub.host, sub.port, sub.proto])

    def _on_set_tempo(self, args: list[Any], peer: Peer) -> None:
        if len(args) != 1:
            raise RequestError("usage: /n2m/set/tempo bpm (0 clears)")
        bpm = number(args[0], "tempo")
        if bpm == 0:
            self.tempo = None
        else:
            Controls(bpm=bpm).validated()
            self.tempo = float(bpm)
        self._broadcast(peer, P.SET_TEMPO, [self.tempo or 0.0])

    def _on_set_meter(self, args: list[Any], peer: Peer) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            meter = args[0]
        elif len(args) == 2:
            meter = f"{whole(args[0], 'numerator')}/{whole(args[1], 'denominator')}"
        else:
            raise RequestError("usage: /n2m/set/meter numerator denominator (or \"4/4\")")
        try:
            self.meter = normalize_meter(meter)
        except ControlError:
            raise RequestError(f"meter {meter!r} not supported: one of {', '.join(METERS)}") from None
        num, den = self.meter.split("/")
        self._broadcast(peer, P.SET_METER, [int(num), int(den)])

    def _on_set_samplerate(self, args: list[Any], peer: Peer) -> None:
        if len(args) != 1:
            raise RequestError("usage: /n2m/set/samplerate hz")
        sr = whole(args[0], "samplerate")
        if sr not in SAMPLE_RATES:
            raise RequestError(f"samplerate {sr} not supported: one of {SAMPLE_RATES}")
        self.sample_rate = sr
        self._broadcast(peer, P.SET_SAMPLERATE, [sr])

    def _on_clips(self, args: list[Any], peer: Peer) -> None:
        query = str(args[0]) if args else ""
        limit = whole(args[1], "limit", 1, 200) if len(args) > 1 else 20
        recs = self.library.search(query, limit) if query else self.library.clips(limit)
        items = [{"id": r.id, "path": r.path, "prompt": r.prompt, "seed": r.seed, "bpm": r.bpm,
                  "bars": r.bars, "samplerate": r.samplerate, "duration": r.duration,
                  "favourite": r.favourite, "created": r.created} for r in recs]
        text = json.dumps(items)
        while len(text.encode()) > P.MAX_DATAGRAM - 1024 and items:
            items.pop()
            text = json.dumps(items)
        self._send(peer, P.CLIPS, [text])

    def _library_clip(self, args: list[Any], usage: str, nargs: int) -> Any:
        if len(args) != nargs or not isinstance(args[0], str) or not args[0]:
            raise RequestError(f"usage: {usage}")
        rec = self.library.clip_by_path(args[0])
        if rec is None:
            raise RequestError(f"no clip at {args[0]!r} in the library")
        return rec

    def _on_clip_favourite(self, args: list[Any], peer: Peer) -> None:
        rec = self._library_clip(args, f"{P.CLIP_FAVOURITE} path on (1 or 0)", 2)
        on = whole(args[1], "on", 0, 1)
        self.library.set_favourite(rec.id, bool(on))
        self._broadcast(peer, P.CLIP_FAVOURITE, [rec.path, on])

    def _on_clip_delete(self, args: list[Any], peer: Peer) -> None:
        rec = self._library_clip(args, f"{P.CLIP_DELETE} path", 1)
        self.library.forget(rec.id)
        self._broadcast(peer, P.CLIP_DELETE, [rec.path])

    # -- the worker --------------------------------------------------------------------------------
    def _finish(self, job: Job, state: str, error: str | None = None) -> None:
        job.state, job.error = state, error
        self.library.set_job_state(job.id, state, error)
        if error and state == "failed":
            self._broadcast(job.reply_to, P.ERROR, [job.id, error])
        self._broadcast(job.reply_to, P.DONE, [job.id, state])
        self.counters[state] += 1

    def _next_job(self) -> Job | None:
        with self._cond:
            while True:
                if self._stopping:
                    return None
                if self._queue and self._held.is_set():
                    job = self._queue.popleft()
                    self._running = job
                    job.state = "running"
                    return job
                self._cond.wait(timeout=0.5)

    def _work(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            try:
                self._run(job)
            except BaseException as exc:  # the worker must outlive any job
                traceback.print_exc()
                self._finish(job, "failed", f"internal error: {exc}")
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

    def _run(self, job: Job) -> None:
        from n2m.bridge.engine import Cancelled

        self.library.set_job_state(job.id, "running")
        def emit(stage: str, fraction: float, step: int = 0, steps: int = 0) -> None:
            self._broadcast(job.reply_to, P.PROGRESS, [job.id, stage, float(fraction), int(step), int(steps)])

        def progress(d: dict) -> None:
            emit(str(d.get("stage", "generate")), float(d.get("fraction", 0.0)),
                 int(d.get("step", 0)), int(d.get("steps", 0)))

        emit("queued", 0.0)
        req = job.request
        missing = [i for i in range(req.variations) if i not in job.done]
        if not missing:  # every take was written before a restart
            emit("done", 1.0)
            self._finish(job, "finished")
            return
        first = missing[0]  # takes are written in order, so the missing ones are a tail
        tail = replace(req, seed=req.seed + first, variations=req.variations - first)
        try:
            clips = [replace(c, index=c.index + first)
                     for c in self.engine.generate(tail, progress=progress, cancel=job.cancel)]
        except Cancelled:
            if job.shutdown:
                self._finish(job, "failed", "the daemon shut down while the job was running")
            else:
                self._finish(job, "cancelled")
            return
        except Exception as exc:
            self._finish(job, "failed", f"generation failed: {exc}")
            return
        clips = [c for c in clips if c.index not in job.done]
        for i, clip in enumerate(clips):
            if job.cancel.is_set():
                self._finish(job, "failed" if job.shutdown else "cancelled",
                             "the daemon shut down while the job was running" if job.shutdown else None)
                return
            emit("pipeline", i / max(1, len(clips)))
            try:
                processed = process_clip(clip, req.output)
                emit("write", (i + 0.5) / max(1, len(clips)))
                files = write_clip(processed, job.out_dir, name=req.name and safe_name(req.name), job_id=job.id)
                self.library.add_clip(
                    job_id=job.id, idx=processed.index, path=str(files.audio), sidecar=str(files.sidecar),
                    prompt=processed.prompt, controls=processed.controls, seed=processed.seed,
                    model=processed.model_id, samplerate=processed.sample_rate, bpm=processed.bpm,
                    bars=processed.bars, duration=processed.duration, format=processed.format,
                    created=files.metadata["created"])
            except Exception as exc:
                self._finish(job, "failed", f"clip pipeline failed: {exc}")
                return
            job.clips.append(str(files.audio))
            job.done.add(processed.index)
            self._broadcast(job.reply_to, P.CLIP_READY,
                            [job.id, str(files.audio), processed.sample_rate,
                             float(processed.bpm or 0.0), int(processed.bars or 0)])
        emit("done", 1.0)
        self._finish(job, "finished")


# -- the command ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="n2m serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default=P.DEFAULT_HOST, help="address to bind (default loopback)")
    ap.add_argument("--port", type=int, default=P.DEFAULT_PORT, help="UDP and TCP port (0 = any free)")
    ap.add_argument("--model", default=None, help="model name under n2m/bridge/models, or a model folder")
    ap.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    ap.add_argument("--queue", type=int, default=P.DEFAULT_QUEUE, help="jobs that may wait (default 16)")
    ap.add_argument("--library", type=Path, default=None, help="clip library file")
    ap.add_argument("--out", type=Path, default=None, help="folder for clips")
    ap.add_argument("--samplerate", type=int, default=48000, choices=SAMPLE_RATES)
    ap.add_argument("--format", default="wav24", choices=sorted(FORMATS))
    ap.add_argument("--grace", type=float, default=30.0, help="seconds a running job may finish on shutdown")
    ap.add_argument("--provider", default="auto", help="ONNX Runtime provider (auto, cpu, cuda)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-tcp", action="store_true", help="serve UDP only")
    args = ap.parse_args(argv)
    try:
        check_bind(args.host, args.allow_remote)
    except BindRefused as exc:
        print(f"n2m serve: {exc}", file=sys.stderr)
        return 2
    if args.queue < 1:
        print("n2m serve: --queue must be at least 1", file=sys.stderr)
        return 2
    config = DaemonConfig(
        host=args.host, port=args.port, allow_remote=args.allow_remote, queue_size=args.queue,
        library_path=args.library or default_library_path(), out_dir=args.out or default_clips_dir(),
        sample_rate=args.samplerate, format=args.format, shutdown_grace=args.grace, tcp=not args.no_tcp)
    try:
        usable_dir(config.out_dir, "--out")
        usable_dir(config.library_path.parent, "--library's folder")
        library = Library(config.library_path, config.out_dir)
    except OutDirError as exc:
        print(f"n2m serve: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        print(f"n2m serve: cannot open the clip library {config.library_path}: {exc}", file=sys.stderr)
        return 2
    rep = library.recover()
    if rep.failed_jobs or rep.removed_temp_files or rep.imported_clips or rep.removed_orphans or rep.requeued:
        print(f"n2m serve: recovered the library: {len(rep.requeued)} unfinished job(s) queued again, "
              f"{rep.failed_jobs} job(s) marked failed, {rep.removed_temp_files} temporary file(s) removed, "
              f"{rep.imported_clips} clip(s) re-imported, {rep.removed_orphans} incomplete clip(s) removed",
              flush=True)
    from n2m.bridge.engine import Engine

    try:
        model_dir = resolve_model(args.model)
    except ModelError as exc:
        print(f"n2m serve: {exc}", file=sys.stderr)
        library.close()
        return 2
    print(f"n2m serve: loading {model_dir} ...", flush=True)
    try:
        engine = Engine.load(model_dir, provider=args.provider, threads=args.threads)
    except (ModelError, ValueError) as exc:
        print(f"n2m serve: {exc}", file=sys.stderr)
        library.close()
        return 3 if isinstance(exc, ModelError) else 2
    daemon = Daemon(engine, config, library)
    daemon.resume(rep.requeued)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        port = daemon.start()
    except OSError as exc:
        print(f"n2m serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        library.close()
        return 1
    proto = "udp" if args.no_tcp else "udp+tcp"
    print(f"n2m serve: listening on {proto} {args.host}:{port} (model {engine.model_id}, pid {os.getpid()})",
          flush=True)
    while not stop.wait(0.5):
        pass
    print("n2m serve: shutting down ...", flush=True)
    daemon.stop()
    library.close()
    print("n2m serve: stopped", flush=True)
    return 0
