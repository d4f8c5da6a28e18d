"""The shipped default model driven the way a producer drives it: the README's command with several
takes, bad output folders, and a real `n2m serve` that is killed (-9) and restarted mid-request.

No fixture model and no thread counts passed: these run `bridge/models/default` with the defaults
a producer gets. Figures are printed (run with -s).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile
from serve_helpers import Serve

from n2m.bridge import protocol as P
from n2m.bridge.client import N2mClient
from n2m.bridge.library import Library

REPO = Path(__file__).resolve().parents[2]
N2M = [sys.executable, "-m", "n2m.bridge.cli"]
README_PROMPT = "dusty boom-bap beat with rhodes chords, 88 bpm, A minor, 8 bars"
SHIPPED = REPO / "bridge" / "models" / "default"


def _readme_generate_command() -> str:
    """The prompt of the README's generate command, so the test follows the README."""
    m = re.search(r'n2m generate "([^"]+)" --out clips/', (REPO / "README.md").read_text())
    assert m, "README.md lost its generate command"
    return m.group(1)


def _run(*args: str, cwd: Path = REPO, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*N2M, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_readme_command_with_three_takes(tmp_path: Path) -> None:
    """The README's prompt, three takes, defaults otherwise (threads left to the engine)."""
    prompt = _readme_generate_command()
    assert prompt == README_PROMPT
    proc = _run("generate", prompt, "--variations", "3", "--seed", "11", "--out", str(tmp_path), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    wavs = sorted(tmp_path.glob("*.wav"))
    assert len(wavs) == 3 and [str(p) for p in wavs] == sorted(proc.stdout.split())
    takes = []
    for p in wavs:
        meta = json.loads(p.with_name(p.name + ".json").read_text())
        assert meta["bpm"] == pytest.approx(88.0) and meta["bars"] == 8
        with AudioFile(str(p)) as f:
            assert f.samplerate == 48000
            x = f.read(f.frames)[0]
        assert len(x) == pytest.approx(8 * 4 * 60 / 88 * 48000, abs=48)  # 8 bars at 88 bpm
        assert np.isfinite(x).all() and 0.05 < np.abs(x).max() <= 1.0
        takes.append((meta["seed"], x))
    assert sorted(s for s, _ in takes) == [11, 12, 13]
    for (_, a), (_, b) in zip(takes, takes[1:], strict=False):
        assert np.abs(a - b).mean() > 1e-3  # different takes, not one clip three times
    print(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("where", ["under-a-file", "a-file"])
def test_generate_refuses_an_unusable_out_in_one_line(tmp_path: Path, where: str) -> None:
    """--out README.md/clips (a folder under a regular file) and --out README.md (a file)."""
    blocker = tmp_path / "README.md"
    blocker.write_text("not a folder")
    out = blocker / "clips" if where == "under-a-file" else blocker
    proc = _run("generate", "techno", "--out", str(out), "--quiet")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("n2m generate: --out") and "is a file" in lines[0]
    assert blocker.read_text() == "not a folder"  # nothing lost


def test_serve_refuses_an_unusable_out_in_one_line(tmp_path: Path) -> None:
    """`n2m serve --out FILE/clips` is refused before the model loads or a port is bound."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    proc = _run("serve", "--port", "0", "--out", str(blocker / "clips"), "--library", str(tmp_path / "lib.sqlite"),
                timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "--out" in lines[0] and "is a file" in lines[0]
    assert "loading" not in proc.stdout


def _subscribed(port: int) -> N2mClient:
    c = N2mClient(port=port, timeout=120)
    assert c.request(P.SUBSCRIBE, "127.0.0.1", c.local_port).address == P.SUBSCRIBE
    return c


def _wait_done(c: N2mClient, job_ids: list[str], timeout: float = 600) -> dict[str, str]:
    done: dict[str, str] = {}
    while len(done) < len(job_ids):
        r = c.wait_for(lambda r: r.address == P.DONE and r.params[0] in job_ids, timeout)
        done[r.params[0]] = r.params[1]
    return done


def test_requests_survive_kill_9_and_run_again_after_restart(tmp_path: Path) -> None:
    """Three requests (takes, steps, format, folder differ) accepted; the daemon is killed -9 once
    while the first runs and once after a take of the second was written; after each restart the
    unfinished ones run again under their ids, their events reach the new daemon's subscriber, and
    takes already written are kept, not made again."""
    s = Serve(None, tmp_path / "clips", tmp_path / "lib.sqlite", threads=None).start()
    asked = {"a": dict(bars=2, variations=2, steps=6),
             "b": dict(bars=2, variations=3, steps=5, format="flac", dir="takes"),
             "c": dict(bars=1, variations=1, steps=4, seed=77)}
    try:
        with N2mClient(port=s.port, timeout=120) as c:
            ids = {k: c.generate(f"lo-fi hip hop {k}, 80 bpm, D minor", **v) for k, v in asked.items()}
            c.wait_for(lambda r: r.address == P.PROGRESS and r.params[0] == ids["a"] and r.params[1] == "generator", 300)
        s.kill9()
        with Library(tmp_path / "lib.sqlite") as lib:
            assert {lib.job(j)["state"] for j in ids.values()} <= {"queued", "running"}

        s.start()  # first restart: a runs again; b writes one take, then the daemon dies again
        assert any("3 unfinished job(s) queued again" in line for line in s.lines), s.lines
        with _subscribed(s.port) as c:
            assert _wait_done(c, [ids["a"]])[ids["a"]] == "finished"
            first_b = c.wait_for(lambda r: r.address == P.CLIP_READY and r.params[0] == ids["b"], 300)
        s.kill9()
        kept = Path(first_b.params[1])
        kept_bytes = kept.read_bytes()

        s.start()  # second restart: b makes only its missing takes, then c runs
        with _subscribed(s.port) as c:
            status = json.loads(c.request(P.STATUS).params[0])
            assert ids["b"] in [status["running"], *status["queued"]]
            ready = []
            done = {}
            while len(done) < 2:
                r = c.wait_for(lambda r: r.address in {P.CLIP_READY, P.DONE} and r.params[0] in (ids["b"], ids["c"]), 600)
                (ready.append(r) if r.address == P.CLIP_READY else done.__setitem__(r.params[0], r.params[1]))
        assert done == {ids["b"]: "finished", ids["c"]: "finished"}
        assert [r.params[0] for r in ready].count(ids["b"]) == 2  # the two missing takes only
    finally:
        assert s.stop() == 0

    with Library(tmp_path / "lib.sqlite") as lib:
        for k, jid in ids.items():
            row = lib.job(jid)
            assert row["state"] == "finished", row
            clips = sorted((r for r in lib.clips(100) if r.job_id == jid), key=lambda r: r.idx)
            want = asked[k]["variations"]
            assert [r.idx for r in clips] == list(range(want))  # every take once
            folder = tmp_path / "clips" / asked[k].get("dir", "")
            ext = ".flac" if asked[k].get("format") == "flac" else ".wav"
            for r in clips:
                assert Path(r.path).parent == folder and r.path.endswith(ext) and Path(r.path).is_file()
                meta = json.loads(Path(r.sidecar).read_text())
                assert meta["bars"] == asked[k]["bars"] and meta["steps"] == asked[k]["steps"]
            assert sorted(r.seed for r in clips) == sorted({r.seed for r in clips})
        assert kept.read_bytes() == kept_bytes  # the take written before the kill is untouched
        assert len(lib.clips(100)) == 6
    on_disk = sorted(p for p in (tmp_path / "clips").rglob("*") if p.suffix in {".wav", ".flac"})
    assert len(on_disk) == 6
    print("after two kills:", [line for line in s.lines if "recovered" in line])


def test_a_request_interrupted_three_times_fails_with_that_reason(tmp_path: Path) -> None:
    """kill -9 while the same request runs, three times: the fourth daemon fails it, says why, and
    still serves the next request."""
    s = Serve(None, tmp_path / "clips", tmp_path / "lib.sqlite", threads=None).start()
    with N2mClient(port=s.port, timeout=120) as c:
        jid = c.generate("endless ambient drone, 60 bpm", bars=4, steps=400)
        c.wait_for(lambda r: r.address == P.PROGRESS and r.params[0] == jid and r.params[1] == "generator", 300)
    s.kill9()
    for _ in range(2):
        s.start()
        with _subscribed(s.port) as c:
            c.wait_for(lambda r: r.address == P.PROGRESS and r.params[0] == jid and r.params[1] == "generator", 300)
        s.kill9()
    s.start()
    try:
        assert any("1 job(s) marked failed" in line for line in s.lines), s.lines
        with N2mClient(port=s.port, timeout=120) as c:
            row = json.loads(c.request(P.STATUS, jid).params[0])
            assert row["state"] == "failed" and "interrupted 3 times" in row["error"]
            nxt = c.generate("short check, 120 bpm", bars=1, steps=4)
            assert list(c.follow(nxt, 300))[-1].params[1] == "finished"
    finally:
        assert s.stop() == 0
