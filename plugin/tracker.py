"""The panel's jobs and the daemon's events about them: plain Python, no Qt.

`JobTracker` owns the panel's `Job`s (generations and edits alike). It sends each request to its
address with a tag of its own and matches the daemon's `/n2m/job id tag` reply on that tag, holds
events that name an id before its `/n2m/job` arrives, and turns `/n2m/progress`,
`/n2m/clip/ready`, `/n2m/error` and `/n2m/done` into job state. Jobs that other senders (a DAW script) started are followed too, as the daemon
reports them to subscribers. After the daemon comes back, its `/n2m/status` tells which jobs
continue (a restarted daemon runs the requests it had accepted again, under the same ids) and
which were lost. Whoever holds the tracker hears of changes through its callbacks.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from n2m.bridge import protocol as P

from .jobs import EditRequest, GenerateRequest, Job

log = logging.getLogger(__name__)

FINAL = ("finished", "failed", "cancelled")
KEEP_JOBS = 50  # finished jobs kept in memory; active ones are always kept
LOST = "lost: the daemon restarted; press Again on a clip or Generate"
WAITING = "waiting for the daemon…"
CANCELLING = "cancelling…"

_NUM = (int, float)
# address -> (required count, types of each known argument); more arguments are ignored
_SHAPES: dict[str, tuple[int, tuple[tuple[type, ...], ...]]] = {
    P.JOB: (1, ((str,), (str,))),
    P.PROGRESS: (3, ((str,), (str,), _NUM, _NUM, _NUM)),
    P.CLIP_READY: (2, ((str,), (str,), _NUM, _NUM, _NUM)),
    P.ERROR: (2, ((str,), (str,))),
    P.DONE: (2, ((str,), (str,))),
}


@dataclass(frozen=True)
class ClipReady:
    """A `/n2m/clip/ready` event: a finished clip file (bpm and bars None in free time)."""

    job_id: str
    path: str
    samplerate: int = 0
    bpm: float | None = None
    bars: int | None = None
    clip_id: int | None = None  # its id in the daemon's library (None from a daemon that does not say)


def malformed(address: str, args: list) -> str:
    """Why a job event's arguments do not fit its address ("" when they do)."""
    need, types = _SHAPES[address]
    if len(args) < need:
        return f"{len(args)} arguments, needs at least {need}"
    for i, (arg, allowed) in enumerate(zip(args, types, strict=False)):
        if isinstance(arg, bool) or not isinstance(arg, allowed):
            want = " or ".join(t.__name__ for t in allowed)
            return f"argument {i + 1} is {type(arg).__name__} {arg!r:.40}, not {want}"
    if address != P.ERROR and not args[0]:
        return "empty job id"
    return ""


def _ignore(*_args: object) -> None:
    pass


class JobTracker:
    """The panel's jobs (newest last), and the daemon's job events applied to them.

    `send(address, args)` sends one OSC message to the daemon and says whether it went. The
    callbacks: `on_change(job)` after any change of a job, `on_finish(job)` once when a job ends,
    `on_clip(job, ClipReady)` for each finished clip file, `on_error(text)` for a daemon error
    that is about no job of the panel's."""

    def __init__(self, send: Callable[[str, list], bool], tag_prefix: str = "") -> None:
        self.send = send
        self.tag_prefix = tag_prefix or f"p{os.getpid()}-{secrets.token_hex(2)}"
        self.jobs: list[Job] = []
        self.on_change: Callable[[Job], None] = _ignore
        self.on_finish: Callable[[Job], None] = _ignore
        self.on_clip: Callable[[Job, ClipReady], None] = _ignore
        self.on_error: Callable[[str], None] = _ignore
        self._by_id: dict[str, Job] = {}
        self._by_tag: dict[str, Job] = {}  # sent, waiting for /n2m/job; oldest first
        self._unsent: deque[Job] = deque()  # made while the daemon was away
        self._early: dict[str, list[tuple[str, list]]] = {}  # events before their /n2m/job
        self._tags = itertools.count(1)
        self._recheck = False
        self._handlers = {P.JOB: self._on_job, P.PROGRESS: self._on_progress, P.CLIP_READY: self._on_clip,
                          P.ERROR: self._on_error, P.DONE: self._on_done}

    # -- requests ----------------------------------------------------------------------------------
    def submit(self, request: GenerateRequest | EditRequest, online: bool) -> Job:
        """A new job for a checked request: sent now, or held until `went_online`."""
        job = Job(request)
        self.jobs.append(job)
        if online:
            self._send(job)
        else:
            job.message = WAITING
            self._unsent.append(job)
            self.on_change(job)
        return job

    def _send(self, job: Job) -> None:
        job.message, job.state = "", "sending"
        job.tag = f"{self.tag_prefix}-{next(self._tags)}"
        self._by_tag[job.tag] = job
        if not self.send(job.request.address, job.request.to_osc_args(job.tag)):
            del self._by_tag[job.tag]
            self._end(job, "failed", "could not send the request (socket error)")
        self.on_change(job)

    def cancel(self, job: Job) -> None:
        if not job.active:
            return
        if job in self._unsent:
            self._unsent.remove(job)
            self._end(job, "cancelled")
        elif not job.id:
            self._end(job, "cancelled")  # the cancel goes out when /n2m/job names the job
        else:
            job.message = CANCELLING
            self.send(P.CANCEL, [job.id])
        self.on_change(job)

    def latest_active(self) -> Job | None:
        """The newest job that is active and not being cancelled already."""
        for job in reversed(self.jobs):
            if job.active and job.message != CANCELLING:
                return job
        return None

    def trim(self, keep: int = KEEP_JOBS) -> None:
        """Forget finished jobs beyond the newest `keep`."""
        if len(self.jobs) <= keep:
            return
        old, new = self.jobs[:-keep], self.jobs[-keep:]
        for j in old:
            if not j.active:
                self._by_id.pop(j.id, None)
        self.jobs = [j for j in old if j.active] + new

    # -- the connection ----------------------------------------------------------------------------
    def went_online(self) -> None:
        """Send what waited, and check the jobs against the next /n2m/status."""
        self._recheck = True
        while self._unsent:
            self._send(self._unsent.popleft())

    def went_offline(self) -> None:
        for job in self.jobs:
            if job.active and job.id:
                job.message = WAITING
                self.on_change(job)

    def check_status(self, status: dict) -> None:
        """The first /n2m/status after the daemon came back: jobs it runs or queues continue,
        jobs it reports ended take that state, and the rest were lost with the old daemon."""
        if not self._recheck:
            return
        self._recheck = False
        queued, running = status.get("queued"), status.get("running")
        if not isinstance(queued, list):
            log.warning("%s: no 'queued' list; cannot tell which jobs survived", P.STATUS)
            return
        alive = {str(j) for j in queued} | ({running} if isinstance(running, str) else set())
        recent = status.get("recent") if isinstance(status.get("recent"), dict) else {}
        for job in list(self.jobs):
            if not job.active or not job.id or job.id in alive:
                continue
            state = recent.get(job.id)
            if state in FINAL:
                self._end(job, state, "" if state != "failed" else "failed while the panel was away")
            else:
                self._end(job, "failed", LOST)
            self.on_change(job)

    # -- events ------------------------------------------------------------------------------------
    def handle(self, address: str, args: list) -> bool:
        """Apply one daemon message; False when the address is not a job event."""
        handler = self._handlers.get(address)
        if handler is None:
            return False
        why = malformed(address, args)
        if why:
            log.warning("%s: %s; ignored", address, why)
            return True
        if address != P.JOB and self._hold_early(address, args):
            return True
        handler(args)
        return True

    def _hold_early(self, address: str, args: list) -> bool:
        """An event about an unknown id while requests of the panel's await their ids may be
        about one of them (the id is not known yet): it waits for the /n2m/job that names it."""
        jid = args[0]
        if not jid or jid in self._by_id or not self._by_tag:
            return False
        self._early.setdefault(jid, []).append((address, list(args)))
        return True

    def _replay_early(self, jid: str) -> None:
        for address, args in self._early.pop(jid, []):
            self._handlers[address](args)

    def _flush_early_if_idle(self) -> None:
        """Nothing of the panel's awaits an id: held events are about other senders' jobs."""
        if self._by_tag:
            return
        for jid in list(self._early):
            self._job_for(jid)
            self._replay_early(jid)

    def _job_for(self, jid: str) -> Job:
        """The job with this id, or a new one for a job that another sender started."""
        job = self._by_id.get(jid)
        if job is None:
            job = Job(GenerateRequest(prompt=""), id=jid, state="queued")
            self._by_id[jid] = job
            self.jobs.append(job)
            self.on_change(job)
        return job

    def _on_job(self, args: list) -> None:
        jid, tag = args[0], (args[1] if len(args) > 1 else "")
        if jid in self._by_id:
            return  # the same reply again
        job = self._by_tag.pop(tag, None) if tag else None
        if job is None:
            self._job_for(jid)
        else:
            job.id = jid
            self._by_id[jid] = job
            if job.state == "cancelled":  # cancelled before the daemon named it
                self.send(P.CANCEL, [jid])
            elif job.state == "sending":
                job.state = "queued"
            self.on_change(job)
        self._replay_early(jid)
        self._flush_early_if_idle()

    def _on_progress(self, args: list) -> None:
        job = self._job_for(args[0])
        if not job.active:
            return
        job.on_progress(args[1], args[2])
        step, steps = (int(args[3]), int(args[4])) if len(args) >= 5 else (0, 0)
        job.message = f"step {step}/{steps}" if steps > 0 else ""
        self.on_change(job)

    def _on_clip(self, args: list) -> None:
        job = self._job_for(args[0])
        path = args[1]
        bpm = float(args[3]) if len(args) > 3 and args[3] > 0 else None
        bars = int(args[4]) if len(args) > 4 and args[4] > 0 else None
        clip_id = args[5] if len(args) > 5 and isinstance(args[5], int) and not isinstance(args[5], bool) else None
        if path not in job.clips:
            job.clips.append(path)
        self.on_clip(job, ClipReady(args[0], path, int(args[2]) if len(args) > 2 else 0, bpm, bars, clip_id))
        self.on_change(job)

    def _on_error(self, args: list) -> None:
        jid, message = args[0], args[1]
        if not jid and self._by_tag and message.startswith(P.QUEUEING):
            # a refused request: the daemon names its tag (else the oldest one waiting is meant)
            tag = args[2] if len(args) > 2 and args[2] in self._by_tag else next(iter(self._by_tag))
            job = self._by_tag.pop(tag)
            if job.state != "cancelled":
                self._end(job, "failed", message.split(":", 1)[1].lstrip())
            self.on_change(job)
            self._flush_early_if_idle()
            return
        if not jid:
            self.on_error(message)
            return
        job = self._job_for(jid)
        job.message = message
        if job.active:
            self._end(job, "failed", message)
        self.on_change(job)

    def _on_done(self, args: list) -> None:
        job = self._job_for(args[0])
        state = args[1] if args[1] in FINAL else "failed"
        if job.active:
            self._end(job, state, "" if state != "failed" else (job.message or "the daemon gave no reason"))
        elif state == "finished":
            job.finish(state)  # finished after all (a cancel that came too late)
        self.on_change(job)

    def _end(self, job: Job, state: str, message: str = "") -> None:
        job.finish(state, message)
        self.on_finish(job)
