"""/n2m/extend, /n2m/inpaint and /n2m/vary on a real `n2m serve` running the shipped model, driven
over real loopback OSC: of a clip the daemon generated (by its library id) and of a stereo
44.1 kHz FLAC with no sidecar (by its path); cancel; kill -9 and restart; and every refusal, each
one /n2m/error line with the request's tag, nothing queued, the source untouched.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile
from serve_helpers import Serve

from n2m.bridge import protocol as P
from n2m.bridge.client import N2mClient, Reply
from n2m.bridge.edit import JOIN_OUTSIDE_S

WAIT = 600  # s: generous deadlines for a shared, busy machine; never asserted as timings
SOURCE_PROMPT = "lo-fi hip hop, 80 bpm, D minor, 2 bars"  # 2 bars at 80 bpm: 6.0 s
FLAC_BPM = 120.0  # the FLAC holds 2 bars at 120 bpm: 4.0 s


@dataclass
class Sources:
    serve: Serve
    clip_id: int  # the daemon's own clip, in its library
    clip: Path
    flac: Path  # a file the library does not hold
    short: Path  # 1 s: under one bar at 90 bpm
    text: Path  # not audio
    library: Path

    def client(self) -> N2mClient:
        return N2mClient(port=self.serve.port, timeout=WAIT)

    def source(self, which: str) -> tuple[int | str, Path, float]:
        """(what to send, the file, its bar in seconds) for "id" (the daemon's clip) or "path" (the FLAC)."""
        return (self.clip_id, self.clip, 3.0) if which == "id" else (str(self.flac), self.flac, 2.0)


def _read(path: Path) -> tuple[np.ndarray, int]:
    with AudioFile(str(path)) as f:
        return f.read(f.frames), int(f.samplerate)


def _beat(path: Path, seconds: float, gains: tuple[float, ...], hz: float = 110.0) -> Path:
    """A file of 0.1 s tones on every half second (120 bpm), one channel per gain, 44.1 kHz."""
    t = np.arange(int(seconds * 44100)) / 44100
    beat = (np.sin(2 * np.pi * hz * t) * (np.mod(t, 0.5) < 0.1)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with AudioFile(str(path), "w", 44100.0, len(gains)) as f:
        f.write(np.stack([g * beat for g in gains]))
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jobs(library: Path) -> int:
    with sqlite3.connect(library) as db:  # the daemon's own library, read as a second client
        return db.execute("SELECT count(*) FROM jobs").fetchone()[0]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Iterator[Sources]:
    tmp = tmp_path_factory.mktemp("edits")
    serve = Serve(None, tmp / "clips", tmp / "lib.sqlite").start()
    try:
        with N2mClient(port=serve.port, timeout=WAIT) as c:
            job = c.generate(SOURCE_PROMPT, seed=4)
            ready = next(r for r in c.follow(job, WAIT) if r.address == P.CLIP_READY)
        flac = _beat(tmp / "files" / "loop.flac", 4.0, (0.5, 0.3))
        short = _beat(tmp / "files" / "blip.wav", 1.0, (0.3,))
        text = tmp / "files" / "notes.wav"
        text.write_text("not audio at all")
        yield Sources(serve, int(ready.params[5]), Path(ready.params[1]), flac, short, text, tmp / "lib.sqlite")
    finally:
        serve.stop()


def _run(c: N2mClient, kind: str, source: int | str, **options) -> tuple[str, list[Reply]]:
    job = c.edit(kind, source, seed=11, **options)
    return job, list(c.follow(job, WAIT))


def _listed(c: N2mClient, path: str) -> dict:
    items = json.loads(c.request(P.CLIPS, "", 200).params[0])
    (item,) = [d for d in items if d["path"] == path]
    return item


def _check_events(replies: list[Reply], takes: int) -> list[Reply]:
    """The job ran to "finished" with whole-job progress, and made `takes` clips; their /n2m/clip/ready."""
    assert replies[-1].address == P.DONE and replies[-1].params[1] == "finished", replies[-3:]
    progress = [(r.params[1], r.params[2]) for r in replies if r.address == P.PROGRESS]
    fractions = [f for _, f in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {"generator", "write"} <= {s for s, _ in progress}
    ready = [r for r in replies if r.address == P.CLIP_READY]
    assert len(ready) == takes
    return ready


@pytest.mark.parametrize("which", ["id", "path"])
def test_extend_by_two_bars_keeps_the_source_and_adds_exact_bars(sources: Sources, which: str) -> None:
    """Input: /n2m/extend of the daemon's 2-bar clip by its library id, and of the FLAC by its path
    (with bpm=120), bars=2."""
    send, path, bar = sources.source(which)
    before = _digest(path)
    extra = {"bpm": FLAC_BPM} if which == "path" else {}
    with sources.client() as c:
        job, replies = _run(c, "extend", send, bars=2, **extra)
        (ready,) = _check_events(replies, 1)
        item = _listed(c, ready.params[1])
    out = Path(ready.params[1])
    y, sr = _read(out)
    x, sr0 = _read(path)
    print(f"extend {which}: {x.shape} at {sr0} -> {y.shape} at {sr}, {out.name}")
    assert (sr, y.shape[0]) == (sr0, x.shape[0]) and out.suffix == path.suffix
    assert abs(y.shape[1] - (x.shape[1] + 2 * bar * sr)) <= 0.005 * sr
    assert np.abs(y[:, : x.shape[1]] - x).max() <= 2e-3  # the source's own samples
    assert np.abs(y[:, x.shape[1]:]).max() > 0.01  # and new bars after them
    assert ready.params[0] == job and ready.params[2] == sr and ready.params[5] == item["id"]
    assert item["edit"] == {"kind": "extend", "bars": 2, "source": str(path),
                            "source_id": sources.clip_id if which == "id" else None}
    assert item["bars"] == 4 and item["duration"] == pytest.approx(y.shape[1] / sr)
    assert _digest(path) == before


@pytest.mark.parametrize("which", ["id", "path"])
def test_inpaint_makes_its_bars_anew_and_keeps_the_rest(sources: Sources, which: str) -> None:
    """Input: /n2m/inpaint bars=2-2 of the daemon's clip (by id) and of the FLAC (by path): bar 1
    is the source's own samples, bar 2 is new, the length is the source's."""
    send, path, bar = sources.source(which)
    before = _digest(path)
    extra = {"bpm": FLAC_BPM} if which == "path" else {}
    with sources.client() as c:
        _, replies = _run(c, "inpaint", send, bars="2-2", **extra)
        (ready,) = _check_events(replies, 1)
        item = _listed(c, ready.params[1])
    y, sr = _read(Path(ready.params[1]))
    x, sr0 = _read(path)
    b = int(bar * sr)
    kept = b - int(np.ceil(JOIN_OUTSIDE_S * sr))  # the join's crossfade reaches at most this far out
    assert (sr, y.shape) == (sr0, x.shape)
    assert np.abs(y[:, :kept] - x[:, :kept]).max() <= 2e-3
    assert np.abs(y[:, b + int(0.15 * sr):] - x[:, b + int(0.15 * sr):]).mean() > 1e-3
    assert item["edit"]["kind"] == "inpaint" and item["edit"]["bars"] == [2, 2] and item["edit"]["source"] == str(path)
    assert _digest(path) == before


@pytest.mark.parametrize("which", ["id", "path"])
def test_vary_at_strength_0_3_makes_two_takes_shaped_like_the_source(sources: Sources, which: str) -> None:
    """Input: /n2m/vary strength=0.3 variations=2 of the daemon's clip (by id) and of the FLAC
    (by path): two different takes, each with the source's rate, channels and length."""
    send, path, _ = sources.source(which)
    extra = {"bpm": FLAC_BPM} if which == "path" else {}
    with sources.client() as c:
        _, replies = _run(c, "vary", send, strength=0.3, variations=2, **extra)
        ready = _check_events(replies, 2)
        items = [_listed(c, r.params[1]) for r in ready]
    x, sr0 = _read(path)
    takes = [_read(Path(r.params[1])) for r in ready]
    assert all((sr, y.shape) == (sr0, x.shape) for y, sr in takes)
    assert np.abs(takes[0][0] - takes[1][0]).mean() > 1e-3
    assert sorted(i["seed"] for i in items) == [11, 12]
    assert all(i["edit"]["kind"] == "vary" and i["edit"]["strength"] == 0.3 and i["edit"]["source"] == str(path)
               for i in items)


def test_cancel_an_edit_job(sources: Sources) -> None:
    """Input: /n2m/extend bars=2 steps=500 of the daemon's clip, cancelled once it samples."""
    with sources.client() as c:
        job = c.edit("extend", sources.clip_id, bars=2, steps=500)
        c.wait_for(lambda r: r.address == P.PROGRESS and r.params[0] == job and r.params[1] == "generator", WAIT)
        c.send(P.CANCEL, job)
        done = c.wait_for(lambda r: r.address == P.DONE and r.params[0] == job, WAIT)
        status = json.loads(c.request(P.STATUS, job).params[0])
    assert done.params[1] == "cancelled" and status["state"] == "cancelled" and status["clips"] == []
    assert status["edit"]["kind"] == "extend" and status["edit"]["source"] == str(sources.clip)
    with sqlite3.connect(sources.library) as db:
        assert db.execute("SELECT count(*) FROM clips WHERE job_id=?", (job,)).fetchone()[0] == 0


BAD = [
    ("extend", "{missing}", ["bars=2"], "no such file"),
    ("extend", "{text}", ["bars=2"], "not audio"),
    ("vary", 987654, ["strength=0.5"], "no clip with id 987654"),
    ("extend", "{short}", ["bars=2", "bpm=90"], "under one bar"),
    ("inpaint", "{id}", ["bars=3-4"], "after the clip's end"),
    ("inpaint", "{id}", ["bars=2-1"], "must not run backwards"),
    ("inpaint", "{id}", ["bars=two"], "write a range of bars"),
    ("vary", "{id}", ["strength=0"], "strength must be in (0, 1]"),
    ("vary", "{id}", ["strength=1.5"], "strength must be in (0, 1]"),
    ("vary", "{id}", ["strength=-0.2"], "strength must be in (0, 1]"),
    ("vary", "{id}", ["strength=0.5", "variations=9"], "variations"),
    ("extend", "{id}", ["bars=40"], "more than this model's"),
    ("extend", "{flac}", ["bars=14", "bpm=120"], "more than this model's"),
    ("extend", "{id}", ["bars=0"], "bars must be from 1 to 64"),
    ("extend", "{id}", ["bars=two"], "whole number"),
    ("extend", "{id}", [], "bars= is required"),
    ("extend", "{id}", ["bars=2", "colour=red"], "unknown option 'colour'"),
    ("extend", "{id}", ["bars=2", "bars=3"], "given twice"),
    ("extend", "{id}", ["bars=2", "format=mp3"], "format 'mp3' not supported"),
    ("extend", "{id}", ["bars=2", "dir=../outside"], "refused"),
    ("extend", "{id}", ["bars=2", "steps=100000"], "out of range"),
    ("extend", "loop.flac", ["bars=2"], "not an absolute path"),
    ("extend", 1.5, ["bars=2"], "a file path or a library clip id"),
    ("vary", None, [], "a source is required"),
]


@pytest.mark.parametrize(("kind", "source", "args", "why"), BAD, ids=[f"{k}-{s}-{'+'.join(a)}" for k, s, a, _ in BAD])
def test_a_bad_edit_gets_one_error_line_with_its_tag_and_loses_nothing(sources: Sources, kind: str, source, args,
                                                                       why: str) -> None:
    """Inputs: a missing file, a text file named .wav, an unknown clip id, 1 s of audio at 90 bpm,
    a region past the end and one running backwards, a range that is not one, strengths 0, 1.5 and
    -0.2, 9 takes, 40 bars after 6 s and 14 after 4 s (past the model's 30 s), 0 bars, bars that
    are not a number or not given, an unknown or repeated option, an unknown format, a folder
    outside the clip folder, too many steps, a relative path, a float as the source, no source."""
    subs = {"{missing}": str(sources.flac.with_name("gone.wav")), "{text}": str(sources.text),
            "{short}": str(sources.short), "{id}": sources.clip_id, "{flac}": str(sources.flac)}
    msg = ([] if source is None else [subs.get(source, source)]) + args + ["tag=bad-1"]
    digests = {p: _digest(p) for p in (sources.clip, sources.flac, sources.short, sources.text)}
    jobs = _jobs(sources.library)
    with sources.client() as c:
        c.send(P.EDIT_ADDRESSES[kind], *msg)
        c.send(P.TEST)  # answered after everything the request caused: the daemon reads in order
        replies = []
        while not replies or replies[-1].address != P.TEST:
            replies.append(c.receive(WAIT))
    print(f"{kind} {msg!r} -> {replies[0].params}")
    errors = [r for r in replies if r.address == P.ERROR]
    assert [r.address for r in replies] == [P.ERROR, P.TEST]
    (err,) = errors
    assert err.params[0] == "" and why in err.params[1] and err.params[2] == "bad-1"
    assert err.params[1].startswith(P.EDIT_ADDRESSES[kind]) and "\n" not in err.params[1]
    assert _jobs(sources.library) == jobs  # nothing queued
    assert {p: _digest(p) for p in digests} == digests  # every source untouched
    assert not (sources.library.parent / "outside").exists()


def _final_status(c: N2mClient, job: str) -> dict:
    """The job's /n2m/status once it has ended (asked again while it runs)."""
    while True:
        row = json.loads(c.request(P.STATUS, job).params[0])
        if row["state"] in {"finished", "failed", "cancelled"}:
            return row
        time.sleep(0.5)


def test_an_edit_survives_kill_9_and_a_vanished_source_fails_with_its_reason(tmp_path: Path) -> None:
    """Input: a vary (2 takes, 120 steps) of a FLAC and an extend of a second FLAC, accepted; the
    daemon is killed -9 while the vary samples and the second FLAC is deleted; the restarted daemon
    makes the vary under its id and fails the extend saying its source is gone. (Its events reach
    the original sender too, but a sender not reading while the daemon restarts may lose UDP
    datagrams, so the test asks /n2m/status.)"""
    s = Serve(None, tmp_path / "clips", tmp_path / "lib.sqlite").start()
    files = [_beat(tmp_path / name, 4.0, (0.4, 0.4), 220.0) for name in ("keep.flac", "gone.flac")]
    try:
        with N2mClient(port=s.port, timeout=WAIT) as c:
            vary = c.edit("vary", str(files[0]), strength=0.5, variations=2, bpm=120, steps=120, seed=3)
            ext = c.edit("extend", str(files[1]), bars=1, bpm=120)
            c.wait_for(lambda r: r.address == P.PROGRESS and r.params[0] == vary and r.params[1] == "generator", WAIT)
        s.kill9()
        files[1].unlink()
        s.start()
        assert any("2 unfinished job(s) queued again" in line for line in s.lines), s.lines
        with N2mClient(port=s.port, timeout=WAIT) as c:
            rows = {j: _final_status(c, j) for j in (vary, ext)}
            items = json.loads(c.request(P.CLIPS, "", 50).params[0])
    finally:
        assert s.stop() == 0
    print({j: (r["state"], r["error"]) for j, r in rows.items()})
    assert rows[vary]["state"] == "finished" and len(rows[vary]["clips"]) == 2
    assert rows[ext]["state"] == "failed" and "gone.flac: no such file" in rows[ext]["error"]
    takes = [i for i in items if i["edit"] and i["edit"]["kind"] == "vary"]
    assert sorted(i["seed"] for i in takes) == [3, 4] and all(i["edit"]["source"] == str(files[0]) for i in takes)
    assert all(Path(i["path"]).suffix == ".flac" and Path(i["path"]).is_file() for i in takes)


@pytest.mark.parametrize("edit", [{}, {"kind": "extend", "source": "/x.wav"}, "extend",
                                  {"kind": "vary", "source": "/x.wav", "options": {"prompt": "p"}}])
def test_a_damaged_edit_record_is_refused_when_a_job_is_restored(edit) -> None:
    """Inputs: an edit record that is empty, lacks its options, is a bare string, or has no seed:
    restoring the job raises ValueError, which the daemon turns into a failed job with the reason."""
    from n2m.bridge.job import Job
    from n2m.bridge.request import from_options

    rec = {"request": from_options({"prompt": "p", "seconds": 4}).record(), "out_dir": "/tmp", "reply_to": None,
           "edit": edit}
    with pytest.raises(ValueError, match="edit record"):
        Job.from_record("j1", rec, 0.0)


def test_a_model_that_cannot_edit_refuses_up_front(tmp_path: Path, tiny_wave_dir: Path) -> None:
    """Input: /n2m/vary strength=0.5 of a FLAC to a daemon whose model generates audio directly (the
    wave route, no log-mel to hold frames in): one /n2m/error line with the tag, nothing queued."""
    from n2m.bridge.daemon import Daemon, DaemonConfig
    from n2m.bridge.engine import Engine
    from n2m.bridge.library import Library

    flac = _beat(tmp_path / "loop.flac", 4.0, (0.4, 0.4))
    with Library(tmp_path / "lib.sqlite", tmp_path / "clips") as lib:
        daemon = Daemon(Engine.load(tiny_wave_dir, provider="cpu", threads=1),
                        DaemonConfig(port=0, library_path=tmp_path / "lib.sqlite", out_dir=tmp_path / "clips"), lib)
        port = daemon.start()
        try:
            with N2mClient(port=port, timeout=WAIT) as c:
                r = c.request(P.VARY, str(flac), "strength=0.5", "tag=w-1", reply=P.JOB)
        finally:
            daemon.stop(0)
        assert r.address == P.ERROR and "log-mel generator's space" in r.params[1] and r.params[2] == "w-1"
        assert lib.jobs() == []
