"""The job tracker without Qt or a daemon: daemon events are fed in as the link would deliver them."""

from __future__ import annotations

import logging
import re

import pytest

from n2m.bridge import protocol as P
from n2m.bridge.oscargs import edit_options, generate_options
from n2m.bridge.request import RequestError, from_options
from n2m.plugin.jobs import EditRequest, GenerateRequest, Job
from n2m.plugin.tracker import LOST, JobTracker


class Daemon:
    """What the tracker sent, and the tracker's callbacks, recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list]] = []
        self.finished: list[Job] = []
        self.clips: list[tuple[Job, str]] = []
        self.errors: list[str] = []
        self.tracker = JobTracker(self.send, tag_prefix="p7")
        self.tracker.on_finish = self.finished.append
        self.tracker.on_clip = lambda job, ready: self.clips.append((job, ready.path))
        self.tracker.on_error = self.errors.append

    def send(self, address: str, args: list) -> bool:
        self.sent.append((address, list(args)))
        return True

    def submit(self, prompt: str, online: bool = True) -> Job:
        return self.tracker.submit(GenerateRequest(prompt), online)

    def event(self, address: str, *args: object) -> None:
        assert self.tracker.handle(address, list(args))

    def tag_of(self, job: Job) -> str:
        (args,) = [a for addr, a in self.sent if addr == P.GENERATE and a[0] == job.request.prompt]
        tags = [a.split("=", 1)[1] for a in args if a.startswith("tag=")]
        return tags[0]


@pytest.fixture
def d() -> Daemon:
    return Daemon()


def test_each_request_carries_its_own_tag_the_daemon_accepts(d):
    a, b = d.submit("first"), d.submit("second")
    assert d.tag_of(a) == a.tag == "p7-1" and d.tag_of(b) == b.tag == "p7-2"
    request = from_options(generate_options(d.sent[0][1]))  # the daemon's own parsing
    assert request.tag == "p7-1" and request.prompt == "first"
    assert JobTracker(d.send).tag_prefix != JobTracker(d.send).tag_prefix  # two panels in one process


def test_job_replies_are_matched_by_tag_not_by_order(d):
    a, b = d.submit("first"), d.submit("second")
    d.event(P.JOB, "id-other", "dawscript-1")  # another sender's request, answered in between
    d.event(P.JOB, "id-b", b.tag)  # the daemon answers the second first
    d.event(P.JOB, "id-a", a.tag)
    assert (a.id, a.state) == ("id-a", "queued") and (b.id, b.state) == ("id-b", "queued")
    other = [j for j in d.tracker.jobs if j.id == "id-other"]
    assert len(other) == 1 and other[0].request.prompt == "" and other[0] not in (a, b)
    d.event(P.JOB, "id-a", a.tag)  # the same reply again changes nothing
    assert len(d.tracker.jobs) == 3


def test_events_before_the_job_reply_wait_for_it(d):
    a = d.submit("first")
    d.event(P.PROGRESS, "id-a", "generator", 0.3, 3, 10)
    d.event(P.CLIP_READY, "id-a", "/clips/a.wav", 48000, 92.0, 4)
    assert a.state == "sending" and a.clips == [] and d.clips == []
    assert len(d.tracker.jobs) == 1  # not mistaken for another sender's job
    d.event(P.JOB, "id-a", a.tag)
    assert (a.state, a.stage, a.fraction, a.message) == ("running", "generator", 0.3, "step 3/10")
    assert a.clips == ["/clips/a.wav"] and d.clips == [(a, "/clips/a.wav")]
    d.event(P.DONE, "id-a", "finished")
    assert a.state == "finished" and d.finished == [a]


def test_held_events_of_other_senders_are_shown_once_nothing_awaits_an_id(d):
    a = d.submit("first")
    d.event(P.PROGRESS, "id-x", "generator", 0.5, 0, 0)
    assert len(d.tracker.jobs) == 1
    d.event(P.JOB, "id-a", a.tag)
    (x,) = [j for j in d.tracker.jobs if j.id == "id-x"]
    assert x.state == "running" and x.fraction == 0.5


def test_a_restart_keeps_the_jobs_the_daemon_lists_and_loses_the_rest(d):
    kept, lost, ended = d.submit("kept"), d.submit("lost"), d.submit("ended")
    for job, jid in ((kept, "id-k"), (lost, "id-l"), (ended, "id-e")):
        d.event(P.JOB, jid, job.tag)
    d.event(P.PROGRESS, "id-k", "generator", 0.6, 6, 10)
    d.tracker.went_offline()
    assert kept.message == "waiting for the daemon…"
    d.tracker.went_online()
    d.tracker.check_status({"running": None, "queued": ["id-k"], "recent": {"id-e": "finished"}})
    assert kept.active and lost.state == "failed" and lost.message == LOST
    assert ended.state == "finished"  # it ended while the panel was away
    assert d.finished == [lost, ended]
    started = kept.run_started
    d.event(P.PROGRESS, "id-k", "queued", 0.0, 0, 0)  # the restarted daemon runs it again
    assert kept.fraction == 0.0 and kept.run_started >= started
    d.event(P.PROGRESS, "id-k", "generator", 0.5, 5, 10)
    d.event(P.DONE, "id-k", "finished")
    assert kept.state == "finished"
    d.tracker.check_status({"running": None, "queued": []})  # only the first status after coming back
    assert kept.state == "finished"


def test_requests_made_offline_go_when_the_daemon_answers(d):
    a = d.submit("offline", online=False)
    assert a.state == "sending" and d.sent == []
    d.tracker.went_online()
    assert d.tag_of(a) == a.tag


def test_a_refused_request_fails_and_other_errors_are_reported(d):
    a = d.submit("first")
    d.event(P.ERROR, "", "/n2m/generate: the queue is full")
    assert a.state == "failed" and a.message == "the queue is full" and d.finished == [a]
    d.event(P.ERROR, "", "/n2m/cancel: no job 'zz'")
    assert d.errors == ["/n2m/cancel: no job 'zz'"]


def test_a_refused_request_is_found_by_the_tag_the_daemon_names(d):
    """Two requests waiting; the daemon refuses the second, naming its tag: the first keeps waiting."""
    a, b = d.submit("first"), d.submit("second")
    d.event(P.ERROR, "", "/n2m/generate: bars 99 is out of range", b.tag)
    assert b.state == "failed" and a.state == "sending" and d.finished == [b]
    d.event(P.JOB, "id-a", a.tag)
    assert a.state == "queued"


def test_a_job_cancelled_before_its_id_is_cancelled_when_the_id_comes(d):
    a = d.submit("first")
    d.tracker.cancel(a)
    assert a.state == "cancelled" and d.finished == [a]
    d.event(P.JOB, "id-a", a.tag)
    assert d.sent[-1] == (P.CANCEL, ["id-a"])
    d.event(P.DONE, "id-a", "cancelled")
    assert a.state == "cancelled" and d.finished == [a]


def test_a_malformed_event_is_logged_and_ignored(d, caplog):
    a = d.submit("first")
    d.event(P.JOB, "id-a", a.tag)
    with caplog.at_level(logging.WARNING, logger="n2m.plugin.tracker"):
        d.event(P.PROGRESS, "id-a", "generator")  # no fraction
        d.event(P.DONE, "id-a", 3)  # state is not a string
        d.event(P.CLIP_READY, "", "/clips/x.wav", 48000, 0.0, 0)  # no job id
    assert a.state == "queued" and a.clips == []
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[0].startswith("/n2m/progress: 2 arguments, needs at least 3")
    assert lines[1].startswith("/n2m/done: argument 2 is int 3, not str")
    assert lines[2].startswith("/n2m/clip/ready: empty job id")
    assert not d.tracker.handle("/n2m/status", ["{}"])  # not a job event: the panel's to handle


def test_an_edit_goes_to_its_address_and_is_followed_like_a_generation(d):
    """Inputs: an extend of library clip 12 by 2 bars and a vary (2 takes) of a file path; the
    daemon refuses the vary by its tag and finishes the extend with library clip 13."""
    readies = []
    d.tracker.on_clip = lambda job, ready: readies.append(ready)
    ext = d.tracker.submit(EditRequest("extend", 12, 2, "a.wav"), True)
    var = d.tracker.submit(EditRequest("vary", "/x/loop.flac", 0.3, "loop.flac", variations=2), True)
    (a1, args1), (a2, args2) = d.sent
    assert a1 == P.EXTEND and args1 == [12, "bars=2", f"tag={ext.tag}"]
    assert a2 == P.VARY and args2 == ["/x/loop.flac", "strength=0.3", "variations=2", f"tag={var.tag}"]
    source, kv = edit_options("vary", args2)  # the daemon's own parsing
    assert source == "/x/loop.flac" and kv == {"strength": "0.3", "variations": "2", "tag": var.tag}
    d.event(P.JOB, "e1", ext.tag)
    d.event(P.ERROR, "", "/n2m/vary: /x/loop.flac: no such file", var.tag)
    assert (var.state, var.message) == ("failed", "/x/loop.flac: no such file") and ext.state == "queued"
    d.event(P.CLIP_READY, "e1", "/clips/a-extend1-e1.wav", 48000, 80.0, 4, 13)
    d.event(P.DONE, "e1", "finished")
    assert ext.state == "finished" and ext.clips == ["/clips/a-extend1-e1.wav"]
    assert [(r.path, r.bars, r.clip_id) for r in readies] == [("/clips/a-extend1-e1.wav", 4, 13)]
    assert ext.request.title == "Extend +2 bars · a.wav" and var.request.title == "Vary 0.3 × 2 · loop.flac"


@pytest.mark.parametrize(("request_", "why"), [
    (EditRequest("vary", 1, 0.0), "strength must be in (0, 1]"),
    (EditRequest("vary", 1, 1.5), "strength must be in (0, 1]"),
    (EditRequest("extend", 1, 0), "bars must be from 1 to 64"),
    (EditRequest("inpaint", 1, "3-2"), "must not run backwards"),
    (EditRequest("vary", 1, 0.5, variations=9), "variations"),
])
def test_an_edit_the_daemon_would_refuse_is_refused_before_it_is_sent(request_, why):
    """Inputs: strengths 0 and 1.5, 0 bars, a range running backwards, 9 takes: the daemon's own checks."""
    with pytest.raises(RequestError, match=re.escape(why)):
        request_.check()
