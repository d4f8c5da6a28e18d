"""The OSC daemon that keeps the cascade loaded and turns requests into clips (`n2m serve`,
bridge/serve.py, starts it).

One selector thread serves OSC (UDP up to 64 KiB and TCP with OSC 1.0 framing, same port); one
worker thread runs jobs from a bounded queue through the engine and the clip pipeline, records them
in the clip library and announces them. Every request gets an answer: a reply, or /n2m/error with
the reason. Edits of a clip (/n2m/vary, /n2m/extend, /n2m/inpaint) are jobs of bridge/editjob.py in
the same queue. The namespace is in n2m.bridge.protocol and docs/osc.md.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pythonosc.osc_message import OscMessage

from n2m.bridge import __version__
from n2m.bridge import protocol as P
from n2m.bridge.clipfile import safe_name
from n2m.bridge.controls import METERS, ControlError, Controls, normalize_meter
from n2m.bridge.editjob import edit_job, run_edit_job
from n2m.bridge.job import Job
from n2m.bridge.library import Library, default_clips_dir, default_library_path
from n2m.bridge.osc import OscParseError, OscServer, Peer, is_loopback
from n2m.bridge.oscargs import clip_dir, generate_options
from n2m.bridge.outdir import usable_dir
from n2m.bridge.pipeline import SAMPLE_RATES, PipelineError, PipelineOptions
from n2m.bridge.request import RequestError, from_options, number, whole
from n2m.bridge.runjob import restore_job, run_job
from n2m.bridge.subscribers import Subscribers, subscriber_peer


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
        self.subscribers = Subscribers()
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
        for kind, address in P.EDIT_ADDRESSES.items():
            self._handlers[address] = lambda args, peer, k=kind: self._enqueue(
                edit_job(k, args, peer, self.engine, self.library, self.config.out_dir), peer)

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
                job = restore_job(row, self.library)
            except (KeyError, TypeError, ValueError) as exc:
                self.library.set_job_state(row["id"], "failed", f"its stored request cannot be read ({exc})")
                continue
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
        for t in self.subscribers.targets(sender):
            self._send(t, address, args)

    def _error(self, peer: Peer, message: str, job_id: str = "", broadcast: bool = False,
               extra: list[Any] | None = None) -> None:
        self.counters["errors"] += 1
        args = [job_id, message, *(extra or [])]
        if broadcast:
            self._broadcast(peer, P.ERROR, args)
        else:
            self._send(peer, P.ERROR, args)

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
        # a refused request that queues names its tag= (third argument), so its sender knows which
        tag = [a[4:] for a in item.params if isinstance(a, str) and a.startswith("tag=")][:1] \
            if item.address in P.QUEUEING else []
        try:
            handler(list(item.params), peer)
        except (RequestError, ControlError, PipelineError) as exc:
            self._error(peer, f"{item.address}: {exc}", extra=tag)
        except Exception as exc:  # a bug in a handler answers the request instead of going silent
            traceback.print_exc()
            self._error(peer, f"{item.address}: internal error: {exc}", extra=tag)

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
        out_dir = clip_dir(self.config.out_dir, request.folder)
        return Job(id=uuid.uuid4().hex[:12], request=request, out_dir=out_dir, reply_to=peer)

    def _on_generate(self, args: list[Any], peer: Peer) -> None:
        job = self._parse_generate(args, peer)
        check = getattr(self.engine, "check", None)
        if callable(check):  # the engine's own limits (steps, guidance, duration, sampler) up front
            try:
                check(job.request)
            except ValueError as exc:
                raise RequestError(str(exc)) from None
        self._enqueue(job, peer)

    def _enqueue(self, job: Job, peer: Peer) -> None:
        """Queue an accepted job, record it, and answer /n2m/job (RequestError if it cannot wait)."""
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
            self._broadcast(peer, P.JOB, [job.id, job.request.tag])
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
        nsubs = len(self.subscribers)
        status = {
            "version": __version__, "model": str(self.engine.model_id), "state": "busy" if running else "idle",
            "running": running, "queued": queued, "queue_size": self.config.queue_size,
            "tempo": self.tempo, "meter": self.meter, "samplerate": self.sample_rate or self.config.sample_rate,
            "subscribers": nsubs, "out_dir": str(self.config.out_dir),
            "recent": {j: self._jobs[j].state for j in list(self._recent)[-20:] if j in self._jobs},
        }
        self._send(peer, P.STATUS, [json.dumps(status)])

    def _on_subscribe(self, args: list[Any], peer: Peer) -> None:
        sub = subscriber_peer(args, peer, self.config.allow_remote)
        self.subscribers.add(sub)
        self._send(peer, P.SUBSCRIBE, [sub.host, sub.port, sub.proto])
        if sub != peer:  # the new subscriber hears the acknowledgement too
            self._send(sub, P.SUBSCRIBE, [sub.host, sub.port, sub.proto])

    def _on_unsubscribe(self, args: list[Any], peer: Peer) -> None:
        sub = subscriber_peer(args, peer, self.config.allow_remote)
        self.subscribers.remove(sub)
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
                  "favourite": r.favourite, "created": r.created, "edit": r.edit} for r in recs]
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
                run = run_job if job.edit is None else run_edit_job
                state, error = run(job, self.engine, self.library,
                                   lambda address, args, j=job: self._broadcast(j.reply_to, address, args))
                self._finish(job, state, error)
            except BaseException as exc:  # the worker must outlive any job
                traceback.print_exc()
                self._finish(job, "failed", f"internal error: {exc}")
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()
