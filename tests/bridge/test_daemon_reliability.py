"""Reliability of a real `n2m serve` process: fuzzing, kill -9 and restart.

Figures are printed (run with -s to see them): packets sent, errors answered, and the daemon's
file descriptors, threads and RSS before and after.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pedalboard.io import AudioFile
from serve_helpers import Serve

from n2m.bridge import protocol as P
from n2m.bridge.client import N2mClient
from n2m.bridge.clipfile import TMP_PREFIX
from n2m.bridge.library import Library
from n2m.bridge.osc import encode_message, frame

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def serve(tmp_path: Path, tiny_model_dir) -> Iterator[Serve]:
    s = Serve(Path(tiny_model_dir), tmp_path / "clips", tmp_path / "lib.sqlite")
    s.start()
    yield s
    s.stop()


def fuzz_packets(n: int, seed: int) -> Iterator[bytes]:
    """Malformed and hostile OSC: random bytes, truncations, bit flips of valid messages, bad type
    tags, lying bundle sizes, deep bundles, huge strings and blobs, wrong argument types."""
    rng = random.Random(seed)
    valid = [encode_message(a, args) for a, args in [
        (P.TEST, []), (P.STATUS, []), (P.CANCEL, ["abc"]), (P.SET_TEMPO, [92.0]), (P.SET_METER, [3, 4]),
        (P.SUBSCRIBE, ["127.0.0.1", 9]), (P.CLIPS, ["q", 5]), (P.GENERATE, [1234]),
        (P.GENERATE, ["x", "bpm=abc"]), (P.SET_SAMPLERATE, [1]),
    ]]
    for i in range(n):
        kind = i % 10
        base = bytearray(rng.choice(valid))
        if kind == 0:
            pkt = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 200)))
        elif kind == 1:
            pkt = bytes(base[: rng.randrange(0, len(base))])
        elif kind in (2, 3):
            for _ in range(rng.randrange(1, 6)):
                base[rng.randrange(len(base))] ^= 1 << rng.randrange(8)
            pkt = bytes(base)
        elif kind == 4:
            pkt = b"/n2m/generate\0\0\0," + bytes(rng.choice(b"ifsbhtdScrmTFNI[]xyz") for _ in range(7)) + b"\0" * 4 + bytes(rng.getrandbits(8) for _ in range(32))
        elif kind == 5:
            pkt = b"#bundle\0" + b"\0" * 8 + struct.pack(">i", rng.choice([-1, 0, 3, 1 << 30, len(base) + 8])) + bytes(base)
        elif kind == 6:
            inner = bytes(base)
            for _ in range(rng.randrange(5, 40)):
                inner = b"#bundle\0" + b"\0" * 8 + struct.pack(">i", len(inner)) + inner
            pkt = inner
        elif kind == 7:
            pkt = encode_message(rng.choice([P.GENERATE, P.CANCEL, P.STATUS, "/x" * 50]), ["y" * rng.randrange(1000, 60000)])
        elif kind == 8:
            pkt = encode_message(rng.choice([P.SET_TEMPO, P.SET_METER, P.SUBSCRIBE, P.CANCEL, P.UNSUBSCRIBE]),
                                 [rng.choice([b"\x00\x01", True, None, -5, 1e30, "", "nan", 2**40]) for _ in range(rng.randrange(0, 4))])
        else:
            pkt = encode_message("/" + "".join(rng.choice("abc/xyz") for _ in range(rng.randrange(1, 30))), [rng.random()])
        yield pkt


def run_fuzz(serve: Serve, n: int) -> dict[str, int]:
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        s.settimeout(0.5)
        sent = 0
        for pkt in fuzz_packets(n, seed=n):
            s.sendto(pkt, ("127.0.0.1", serve.port))
            sent += 1
            if sent % 50 == 0:  # pace by replies so the kernel buffers do not overflow
                try:
                    while True:
                        s.recv(70000)
                        answered += 1
                        if answered >= sent - 5:
                            break
                except TimeoutError:
                    pass
        try:
            while True:
                s.recv(70000)
                answered += 1
        except TimeoutError:
            pass
    tcp_conns = 0
    rng = random.Random(1)
    for pkt in list(fuzz_packets(200, seed=7)):  # over TCP too: framed garbage and broken framing
        with socket.create_connection(("127.0.0.1", serve.port), timeout=5) as c:
            tcp_conns += 1
            c.sendall(frame(pkt) if rng.random() < 0.7 else pkt)
    return {"udp_sent": sent, "udp_answered": answered, "tcp_connections": tcp_conns}


def test_fuzz_1000_packets_quick(serve: Serve) -> None:
    with N2mClient(port=serve.port) as c:
        assert c.request(P.TEST).params[0] == "ok"
    stats = run_fuzz(serve, 1000)
    print(f"fuzz (quick): {stats}")
    assert serve.proc.poll() is None
    with N2mClient(port=serve.port) as c:
        assert c.request(P.TEST).params[0] == "ok"
    assert stats["udp_answered"] >= 0.95 * stats["udp_sent"]


@pytest.mark.slow
def test_fuzz_10000_packets_without_dying_or_leaking(serve: Serve) -> None:
    # warm-up: one generation (ONNX Runtime's arenas and threads are made on first use) and 1,000
    # packets (first errors, allocator pools), so that before/after compare the fuzzing alone
    with N2mClient(port=serve.port) as c:
        job = c.generate("before the storm", bpm=120, bars=2, steps=2)
        assert list(c.follow(job, 300))[-1].params[1] == "finished"
    run_fuzz(serve, 1000)
    time.sleep(0.5)
    before = serve.resources()
    stats = {"udp_sent": 0, "udp_answered": 0, "tcp_connections": 0}
    trail = []
    for _ in range(5):  # 5 x 2,000 packets, RSS after each round
        for k, v in run_fuzz(serve, 2000).items():
            stats[k] += v
        trail.append(serve.resources()["rss_kib"])
    time.sleep(0.5)
    after = serve.resources()
    print(f"RSS after each 2,000-packet round (KiB): {trail}")
    with N2mClient(port=serve.port) as c:  # and it still works
        assert c.request(P.TEST).params[0] == "ok"
        job = c.generate("after the storm", bpm=120, bars=2, steps=2)
        assert list(c.follow(job, 300))[-1].params[1] == "finished"
    print(f"fuzz: {stats['udp_sent']} UDP packets ({stats['udp_answered']} /n2m/error replies received) + "
          f"{stats['tcp_connections']} TCP connections; daemon before {before} after {after} "
          f"(RSS {after['rss_kib'] - before['rss_kib']:+d} KiB)")
    assert serve.proc.poll() is None
    assert stats["udp_answered"] >= 0.95 * stats["udp_sent"]
    assert after["fds"] == before["fds"] and after["threads"] == before["threads"]
    assert after["rss_kib"] - before["rss_kib"] < 20 * 1024


def check_consistent(out: Path, library: Path) -> dict[str, int]:
    files = sorted(out.iterdir()) if out.exists() else []
    assert not [p for p in files if p.name.startswith(TMP_PREFIX)], "temporary files are visible"
    with Library(library) as lib:
        jobs = lib.jobs()
        assert not [j for j in jobs if j["state"] in {"queued", "running"}]
        clips = lib.clips(1000)
        for r in clips:
            with AudioFile(r.path) as f:
                assert f.frames == round(r.duration * r.samplerate)
            assert Path(r.sidecar).is_file()
        audio = {str(p) for p in files if p.suffix in {".wav", ".flac"}}
        assert audio == {r.path for r in clips}, "every clip on disk is in the library and vice versa"
    return {"jobs": len(jobs), "failed": sum(j["state"] == "failed" for j in jobs), "clips": len(clips)}


@pytest.mark.parametrize("kill_at", ["generate", "write"])
def test_kill_9_during_a_job_then_restart(tmp_path: Path, tiny_model_dir, kill_at: str) -> None:
    s = Serve(Path(tiny_model_dir), tmp_path / "clips", tmp_path / "lib.sqlite")
    s.start()
    try:
        with N2mClient(port=s.port, timeout=120) as c:
            done = c.generate("survivor groove take", bpm=120, bars=2, steps=2)
            assert list(c.follow(done, 300))[-1].params[1] == "finished"
            jobs = [c.generate(f"victim {i}", bpm=120, bars=2, steps=2 if kill_at == "write" else 300)
                    for i in range(3)]
            if kill_at == "write":
                c.wait_for(lambda r: r.address == P.PROGRESS and r.params[1] == "write", 300)
            else:
                c.wait_for(lambda r: r.address == P.PROGRESS and r.params[0] == jobs[0] and r.params[1] not in {"queued"}, 300)
        s.kill9()
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
    with Library(tmp_path / "lib.sqlite") as lib:
        states_after_kill = {j["id"]: j["state"] for j in lib.jobs()}
    s2 = Serve(Path(tiny_model_dir), tmp_path / "clips", tmp_path / "lib.sqlite")
    s2.start()
    try:
        with N2mClient(port=s2.port, timeout=120) as c:
            assert c.request(P.TEST).params[0] == "ok"
            # the accepted requests were not lost with the daemon: they run again and finish
            for jid in jobs:
                row = json.loads(c.request(P.STATUS, jid).params[0])
                while row["state"] in {"queued", "running"}:
                    time.sleep(0.2)
                    row = json.loads(c.request(P.STATUS, jid).params[0])
                assert row["state"] == "finished", row
            job = c.generate("after restart", bpm=120, bars=2, steps=2)
            assert list(c.follow(job, 300))[-1].params[1] == "finished"
    finally:
        assert s2.stop() == 0
    figures = check_consistent(tmp_path / "clips", tmp_path / "lib.sqlite")
    recovered = [line for line in s2.lines if "recovered" in line]
    print(f"kill -9 at '{kill_at}': states at the kill {sorted(states_after_kill.values())}; restart: "
          f"{recovered}; library after: {figures}")
    assert figures["failed"] == 0 and figures["clips"] == 5
