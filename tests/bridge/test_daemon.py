"""The daemon with the real engine (tiny random-weight ONNX cascade) on real loopback sockets."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from oscdump import OscDump
from pedalboard.io import AudioFile

from n2m.bridge import protocol as P
from n2m.bridge.client import N2mClient, Reply
from n2m.bridge.clipfile import TMP_PREFIX
from n2m.bridge.daemon import BindRefused, Daemon, DaemonConfig, check_bind
from n2m.bridge.library import Library
from n2m.bridge.serve import main as serve_main

liblo = pytest.mark.skipif(shutil.which("oscsend") is None, reason="liblo-tools (oscsend/oscdump) not installed")
FAST = ["steps=2", "bars=1", "bpm=120"]  # 2 s clips, 2 sampling steps: the tiny model is quick


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from n2m.bridge.engine import Engine

    return Engine.load(tiny_model_dir, provider="cpu", threads=1)


class Running:
    def __init__(self, tmp: Path, engine, **cfg) -> None:
        self.out = tmp / "clips"
        self.library = Library(tmp / "lib.sqlite", self.out)
        self.daemon = Daemon(engine, DaemonConfig(port=0, library_path=tmp / "lib.sqlite", out_dir=self.out,
                                                  shutdown_grace=0, **cfg), self.library)
        self.port = self.daemon.start()

    def client(self, proto: str = "udp") -> N2mClient:
        return N2mClient(port=self.port, proto=proto, timeout=60)

    def close(self) -> None:
        self.daemon.stop(0)
        self.library.close()


@pytest.fixture
def running(tmp_path, engine):
    r = Running(tmp_path, engine)
    yield r
    r.close()


def follow(c: N2mClient, job: str, timeout: float = 120) -> list[Reply]:
    return list(c.follow(job, timeout))


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_a_whole_generation(running: Running, proto: str) -> None:
    with running.client(proto) as c:
        assert c.request(P.TEST).params[0] == "ok"
        job = c.generate("dusty boom-bap beat with rhodes chords", bpm=96, bars=1, key="Am", seed=3, steps=2)
        replies = follow(c, job)
    addrs = [r.address for r in replies]
    print(proto, addrs)
    assert addrs[-1] == P.DONE and replies[-1].params[1] == "finished"
    assert P.PROGRESS in addrs and addrs.count(P.CLIP_READY) == 1
    ready = next(r for r in replies if r.address == P.CLIP_READY)
    _, path, sr, bpm, bars, clip_id = ready.params
    assert (sr, bpm, bars) == (48000, 96.0, 1)
    with AudioFile(path) as f:
        assert f.frames == round(4 * 60 / 96 * 48000) and f.samplerate == 48000
    rec = running.library.clips()[0]
    assert rec.id == clip_id and rec.path == path and rec.seed == 3 and rec.controls["key"] == "A" and rec.controls["mode"] == "minor"
    assert running.library.job(job)["state"] == "finished"
    fractions = [r.params[2] for r in replies if r.address == P.PROGRESS]
    assert all(0.0 <= f <= 1.0 for f in fractions)


def test_positional_form_and_job_status(running: Running) -> None:
    running.daemon.hold()
    with running.client() as c:
        c.send(P.GENERATE, "lofi piano", 120.0, "F#m", 1, 77)
        job = c.wait_for(lambda r: r.address in {P.JOB, P.ERROR}).params[0]
        st = json.loads(c.request(P.STATUS, job).params[0])
        print(st)
        assert st["state"] == "queued" and st["seed"] == 77
        assert st["controls"]["bpm"] == 120.0 and st["controls"]["key"] == "F#" and st["controls"]["bars"] == 1
        overall = json.loads(c.request(P.STATUS).params[0])
        assert overall["queued"] == [job] and overall["queue_size"] == P.DEFAULT_QUEUE
        running.daemon.release()
        assert follow(c, job)[-1].params[1] == "finished"


BAD_REQUESTS = [
    ((P.GENERATE,), "prompt is required"),
    ((P.GENERATE, 42), "prompt must be a string"),
    ((P.GENERATE, "   "), "1-1000 characters"),
    ((P.GENERATE, "x" * 1001), "1-1000 characters"),
    ((P.GENERATE, "a", "bpm=fast"), "bpm must be a number"),
    ((P.GENERATE, "a", "bpm=nan"), "bpm must be a number"),
    ((P.GENERATE, "a", "bpm=900"), "out of range"),
    ((P.GENERATE, "a", "key=H#"), "key 'H#' not understood"),
    ((P.GENERATE, "a", "meter=5/4"), "unsupported meter"),
    ((P.GENERATE, "a", "bars=1.5"), "whole number"),
    ((P.GENERATE, "a", "bars=0"), "bars must be"),
    ((P.GENERATE, "a", "seed=-1"), "out of range"),
    ((P.GENERATE, "a", "steps=100000"), "out of range"),
    ((P.GENERATE, "a", "colour=red"), "unknown option 'colour'"),
    ((P.GENERATE, "a", "bpm=90", "bpm=91"), "given twice"),
    ((P.GENERATE, "a", "bpm=90", 4), "after key=value"),
    ((P.GENERATE, "a", 1, 2, 3, 4, 5), "too many positional"),
    ((P.GENERATE, "a", "samplerate=22050"), "not supported"),
    ((P.GENERATE, "a", "format=mp3"), "not supported"),
    ((P.GENERATE, "a", "loop=maybe"), "0/1"),
    ((P.GENERATE, "a", "bars=64", "bpm=40"), "outside"),
    ((P.GENERATE, "a", "sampler=magic"), "sampler"),
    ((P.CANCEL,), "usage"),
    ((P.CANCEL, "nope"), "no job"),
    ((P.STATUS, "nope"), "no job"),
    ((P.SUBSCRIBE, "127.0.0.1", "http"), "whole number"),
    ((P.SUBSCRIBE, "127.0.0.1", 70000), "out of range"),
    ((P.SUBSCRIBE, "10.1.2.3", 9000), "not loopback"),
    ((P.SUBSCRIBE, "evil.example.com", 9000), "IP address"),
    ((P.SUBSCRIBE, "127.0.0.1", 9000, "sctp"), "udp or tcp"),
    ((P.UNSUBSCRIBE, "127.0.0.1", 9), "not subscribed"),
    ((P.SET_TEMPO,), "usage"),
    ((P.SET_TEMPO, "fast"), "must be a number"),
    ((P.SET_TEMPO, 500.0), "out of range"),
    ((P.SET_METER, 7, 8), "not supported"),
    ((P.SET_METER, "x"), "not supported"),
    ((P.SET_SAMPLERATE, 22050), "not supported"),
    ((P.CLIPS, "q", 100000), "out of range"),
    (("/n2m/launch_missiles", 1), "unknown address"),
    (("/", ), "unknown address"),
]


@pytest.mark.parametrize("msg,reason", BAD_REQUESTS, ids=[f"{m[0]}{m[1:]!r}"[:60] for m, _ in BAD_REQUESTS])
@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_every_bad_request_gets_an_error_with_the_reason(running: Running, msg, reason: str, proto: str) -> None:
    with running.client(proto) as c:
        r = c.request(*msg, reply="/never")
        print(f"{proto} {msg!r:.80} -> {r.params}")
        assert r.address == P.ERROR and reason in r.params[1]
        assert c.request(P.TEST).params[0] == "ok"  # still serving


@pytest.mark.parametrize("arg", ["name=../../etc/passwd", "name=a/b", "name=/etc/passwd", "name=..",
                                 "name=.bashrc", "dir=../outside", "dir=/tmp", "dir=a/../../b", "dir=~/x",
                                 "dir=a\\..\\..\\b", "dir=.hidden", "dir=a/./b", "name=~root", "name=a:b"])
def test_path_traversal_is_refused(running: Running, arg: str, tmp_path: Path) -> None:
    with running.client() as c:
        r = c.request(P.GENERATE, "a beat", arg, reply=P.JOB)
    print(f"{arg!r} -> {r.params}")
    assert r.address == P.ERROR and "refused" in r.params[1]
    assert not (tmp_path / "outside").exists() and not (tmp_path / "b").exists()
    assert running.library.jobs() == []


def test_a_safe_subfolder_and_name_are_used(running: Running) -> None:
    with running.client() as c:
        job = c.generate("a beat", dir="session one/drums", name="Kick loop", **dict(a.split("=") for a in FAST))
        ready = next(r for r in follow(c, job) if r.address == P.CLIP_READY)
    path = Path(ready.params[1])
    assert path.parent == (running.out / "session one" / "drums").resolve() and "Kick loop" in path.name


def test_loop_over_osc_is_sampled_periodic(running: Running) -> None:
    """/n2m/generate "a beat" loop=1 bars=2 bpm=93 meter=3/4 (3.871 s, 193.5 grid frames) on the
    tiny model, then the same with loop_crossfade=1: the first file is exactly 2 bars sampled
    periodic with no stretch; the second is the crossfaded loop."""
    seams = []
    with running.client() as c:
        for extra in ({}, {"loop_crossfade": 1}):
            job = c.generate("a beat", loop=1, bars=2, bpm=93, meter="3/4", steps=2, seed=4, **extra)
            ready = next(r for r in follow(c, job) if r.address == P.CLIP_READY)
            path = Path(ready.params[1])
            meta = json.loads(path.with_name(path.name + ".json").read_text())
            with AudioFile(str(path)) as f:
                assert f.frames == round(2 * 3 * 60 / 93 * 48000)
            seams.append((meta["loop_seam"], meta["stretch_ratio"]))
    print(seams)
    assert seams[0] == ("periodic", 1.0) and seams[1][0] == "crossfade"


@pytest.mark.parametrize("sub", ["notes.txt", "notes.txt/drums"])
def test_a_request_folder_that_is_or_lies_under_a_file_is_refused_before_queueing(running: Running, sub: str) -> None:
    """dir=notes.txt (a regular file in the clip folder) and dir=notes.txt/drums (a folder under it)."""
    running.out.mkdir(parents=True, exist_ok=True)
    (running.out / "notes.txt").write_text("keep me")
    with running.client() as c:
        r = c.request(P.GENERATE, "a beat", f"dir={sub}", *FAST, reply=P.JOB)
        assert c.request(P.TEST).params[0] == "ok"
    print(f"dir={sub!r} -> {r.params}")
    assert r.address == P.ERROR and "is a file" in r.params[1] and "\n" not in r.params[1]
    assert running.library.jobs() == []  # nothing queued
    assert (running.out / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com"])
def test_remote_bind_is_refused_without_the_flag(host: str, tmp_path: Path, capsys, engine) -> None:
    with pytest.raises(BindRefused, match="--allow-remote"):
        check_bind(host, allow_remote=False)
    check_bind(host, allow_remote=True)  # explicit flag: allowed (not bound here: tests stay on loopback)
    with pytest.raises(BindRefused):
        Daemon(engine, DaemonConfig(host=host, port=0, out_dir=tmp_path), Library(tmp_path / "l.sqlite"))
    assert serve_main(["--host", host, "--library", str(tmp_path / "x.sqlite"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    print(f"n2m serve --host {host}: {err.strip()}")
    assert "refusing to listen" in err and "--allow-remote" in err
    assert not (tmp_path / "x.sqlite").exists()


def test_cancel_a_queued_and_a_running_job(running: Running) -> None:
    running.daemon.hold()
    with running.client() as c:
        first = c.generate("long one", steps=400, bars=1, bpm=120)
        second = c.generate("queued one", steps=2, bars=1, bpm=120)
        c.send(P.CANCEL, second)
        done2 = c.wait_for(lambda r: r.address == P.DONE and r.params[0] == second)
        assert done2.params[1] == "cancelled"
        running.daemon.release()
        c.wait_for(lambda r: r.address == P.PROGRESS and r.params[0] == first and r.params[1] != "queued")
        c.send(P.CANCEL, first)
        done1 = c.wait_for(lambda r: r.address == P.DONE and r.params[0] == first)
        assert done1.params[1] == "cancelled"
        r = c.request(P.CANCEL, first, reply="/never")
        assert r.address == P.ERROR and "already cancelled" in r.params[1]
    states = {j["id"]: j["state"] for j in running.library.jobs()}
    assert states == {first: "cancelled", second: "cancelled"}
    assert running.library.clips() == []


def test_full_queue_200_requests_each_answered_nothing_lost(running: Running) -> None:
    running.daemon.hold()
    with running.client() as c:
        jobs = [c.generate(f"job {i}", **dict(a.split("=") for a in FAST)) for i in range(P.DEFAULT_QUEUE)]
        for i in range(200):
            c.send(P.GENERATE, f"overflow {i}", *FAST)
        errors = [c.wait_for(lambda r: r.address in {P.JOB, P.ERROR}) for _ in range(200)]
        full = [e for e in errors if e.address == P.ERROR and "queue is full" in e.params[1]]
        print(f"200 requests against a full queue of {P.DEFAULT_QUEUE}: {len(full)} answered 'queue is full', "
              f"{len(errors) - len(full)} other replies; e.g. {full[0].params[1]!r}")
        assert len(full) == 200
        assert c.receive(0.3) is None or True  # nothing else pending of importance
        running.daemon.release()
        finished = [follow(c, j)[-1].params[1] for j in jobs]
    assert finished == ["finished"] * P.DEFAULT_QUEUE
    assert len(running.library.jobs("finished")) == P.DEFAULT_QUEUE and len(running.library.jobs()) == P.DEFAULT_QUEUE
    assert len(running.library.clips(100)) == P.DEFAULT_QUEUE
    assert all(Path(r.path).is_file() for r in running.library.clips(100))
    print(f"nothing lost: {P.DEFAULT_QUEUE}/{P.DEFAULT_QUEUE} queued jobs finished with a clip on disk and in the library")


def test_daw_sync_tempo_meter_and_rate_are_used_when_a_request_gives_none(running: Running) -> None:
    with running.client() as c:
        assert c.request(P.SET_TEMPO, 100.0).params == (100.0,)
        assert c.request(P.SET_METER, 3, 4).params == (3, 4)
        assert c.request(P.SET_SAMPLERATE, 44100).params == (44100,)
        job = c.generate("waltz pad", bars=2, steps=2)
        ready = next(r for r in follow(c, job) if r.address == P.CLIP_READY)
        _, path, sr, bpm, bars, _ = ready.params
        assert (sr, bpm, bars) == (44100, 100.0, 2)
        with AudioFile(path) as f:
            assert f.frames == round(2 * 3 * 60 / 100 * 44100)
        job = c.generate("faster funk groove", bpm=120, bars=2, steps=2)  # the request's own tempo wins
        ready = next(r for r in follow(c, job) if r.address == P.CLIP_READY)
        assert ready.params[3] == 120.0


def test_replies_go_to_the_sender_and_to_subscribers(running: Running) -> None:
    with running.client() as c, running.client() as listener:
        assert c.request(P.SUBSCRIBE, "127.0.0.1", listener.local_port).address == P.SUBSCRIBE
        job = c.generate("shared groove loop", **dict(a.split("=") for a in FAST))
        mine = follow(c, job)
        theirs = follow(listener, job)
        assert [r.address for r in theirs if r.address != P.JOB] == [r.address for r in mine]
        assert c.request(P.UNSUBSCRIBE, "127.0.0.1", listener.local_port).address == P.UNSUBSCRIBE


def test_shutdown_fails_the_job_in_flight_and_the_queued_ones(tmp_path: Path, engine) -> None:
    r = Running(tmp_path, engine)
    try:
        with r.client() as c:
            first = c.generate("in flight", steps=400, bars=1, bpm=120)
            second = c.generate("waiting in line", steps=2, bars=1, bpm=120)
            c.wait_for(lambda m: m.address == P.PROGRESS and m.params[0] == first and m.params[1] != "queued")
            r.daemon.stop(grace=0)
            states = {j["id"]: (j["state"], j["error"]) for j in r.library.jobs()}
            print(states)
            assert states[first][0] == "failed" and "shut down" in states[first][1]
            assert states[second][0] == "failed" and "shut down" in states[second][1]
            done = c.wait_for(lambda m: m.address == P.DONE and m.params[0] == first)
            assert done.params[1] == "failed"
        assert not [p for p in r.out.iterdir() if p.name.startswith(TMP_PREFIX)]
    finally:
        r.library.close()


@liblo
@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_liblo_oscsend_and_oscdump_drive_a_whole_generation(running: Running, proto: str) -> None:
    dump = OscDump(proto)
    url = f"osc.{proto}://127.0.0.1:{running.port}"
    lines: list[str] = []
    try:
        for _ in range(100):  # subscribe until oscdump (which binds asynchronously) hears the ack
            subprocess.run(["oscsend", url, P.SUBSCRIBE, "sis", "127.0.0.1", str(dump.port), proto], check=True,
                           timeout=10)
            if (line := dump.next(0.1)) is not None:
                lines.append(line)
                break
        subprocess.run(["oscsend", url, P.GENERATE, "ssss", "boom bap with rhodes", "bpm=90", "bars=1", "steps=2"],
                       check=True, timeout=10)
        for _ in range(10_000):  # bounded: until /n2m/done
            if (line := dump.next(120)) is None:
                break
            lines.append(line)
            if line.startswith("/n2m/done") or line.startswith("/n2m/error"):
                break
    finally:
        dump.close()
    print("\n".join(lines))
    assert lines[0].startswith(P.SUBSCRIBE)
    assert any(line.startswith(P.JOB) for line in lines)
    assert any(line.startswith(P.PROGRESS) for line in lines)
    ready = [line for line in lines if line.startswith(P.CLIP_READY)]
    assert len(ready) == 1 and lines[-1].startswith(P.DONE) and "finished" in lines[-1]
    path = next(tok.strip('"') for tok in ready[0].split() if tok.strip('"').endswith(".wav"))
    assert Path(path).is_file()


def test_favourite_and_delete_reach_the_library(running: Running) -> None:
    """Inputs tried: a real clip's path, a path the library does not know, a bad flag, no arguments."""
    with running.client() as c:
        job = c.generate("warm rhodes chords, 96 bpm", steps=2, bars=1, bpm=120, seed=5)
        replies = follow(c, job)
        path = next(r for r in replies if r.address == P.CLIP_READY).params[1]
        assert tuple(c.request(P.CLIP_FAVOURITE, path, 1).params) == (path, 1)
        assert running.library.clip_by_path(path).favourite is True
        assert tuple(c.request(P.CLIP_FAVOURITE, path, 0).params) == (path, 0)
        assert running.library.clip_by_path(path).favourite is False
        for bad, reason in [([str(running.out / "nope.wav"), 1], "no clip at"), ([path, 7], "on"),
                            ([], "usage")]:
            err = c.request(P.CLIP_FAVOURITE, *bad)
            assert err.address == P.ERROR and reason in err.params[1], err
        assert tuple(c.request(P.CLIP_DELETE, path).params) == (path,)
    assert running.library.clip_by_path(path) is None
    assert Path(path).exists()  # the daemon forgets the row; the files are the caller's


def test_the_tag_is_echoed_and_the_fraction_covers_the_whole_job(running: Running) -> None:
    """Two tagged requests sent back to back: each /n2m/job names its tag; the fraction of each job
    never goes back over text, generator, cascader, pipeline and write of its two takes, and ends at 1."""
    with running.client() as c:
        c.send(P.GENERATE, "first groove", "tag=panel-1", "variations=2", *FAST)
        c.send(P.GENERATE, "second groove", "tag=panel-2", *FAST)
        jobs = [c.wait_for(lambda r: r.address == P.JOB) for _ in range(2)]
        ids = {r.params[1]: r.params[0] for r in jobs}
        assert set(ids) == {"panel-1", "panel-2"}
        replies = follow(c, ids["panel-1"])
        bad = c.request(P.GENERATE, "x", "tag=no spaces", reply=P.JOB)
        refused = c.request(P.GENERATE, "x", "bars=0", "tag=panel-3", reply=P.JOB)
    assert bad.address == P.ERROR and "tag" in bad.params[1]
    assert refused.address == P.ERROR and refused.params[0] == "" and refused.params[2] == "panel-3"
    progress = [(r.params[1], r.params[2]) for r in replies if r.address == P.PROGRESS]
    fractions = [f for _, f in progress]
    print(progress)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    stages = [s for s, _ in progress]
    assert stages.index("write") > stages.index("generator") and stages.count("pipeline") == 2
