"""The OSC transport on real loopback sockets, and against liblo's oscsend/oscdump."""

from __future__ import annotations

import queue
import shutil
import socket
import struct
import subprocess

import pytest
from oscdump import OscDump

from n2m.bridge.osc import (
    FrameReader,
    OscParseError,
    OscServer,
    Peer,
    decode_packet,
    encode_message,
    frame,
    is_loopback,
)

liblo = pytest.mark.skipif(shutil.which("oscsend") is None, reason="liblo-tools (oscsend/oscdump) not installed")


@pytest.fixture
def server():
    got: queue.Queue = queue.Queue()
    srv = OscServer("127.0.0.1", 0, lambda item, peer: got.put((item, peer)))
    srv.start()
    yield srv, got
    srv.close()


def test_roundtrip_types() -> None:
    data = encode_message("/n2m/generate", ["lofi", 92, 1.5, True, 2**40, b"\x01\x02"])
    (m,) = decode_packet(data)
    assert m.address == "/n2m/generate"
    assert m.params[:3] == ["lofi", 92, 1.5] and m.params[3] is True and m.params[4] == 2**40


@pytest.mark.parametrize("bad", [b"", b"abc", b"nope", b"/n2m\0\0\0\0,zz\0", b"#bundle\0" + b"\0" * 4,
                                 b"/x\0\0,s\0\0" + b"\xff" * 4, b"\0\0\0\0"])
def test_malformed_packets_raise_parse_errors(bad: bytes) -> None:
    with pytest.raises(OscParseError):
        decode_packet(bad)


def test_deeply_nested_bundle_is_an_error_not_a_crash() -> None:
    inner = encode_message("/n2m/test")
    for _ in range(3000):
        inner = b"#bundle\0" + b"\0" * 7 + b"\1" + struct.pack(">i", len(inner)) + inner
    with pytest.raises(OscParseError):
        decode_packet(inner[:65000])


def test_frame_reader_splits_a_stream_and_refuses_huge_frames() -> None:
    msgs = [encode_message("/a", [i]) for i in range(5)]
    stream = b"".join(frame(m) for m in msgs)
    r = FrameReader()
    out = []
    for i in range(0, len(stream), 3):  # arrives 3 bytes at a time
        out += r.feed(stream[i:i + 3])
    assert out == msgs
    with pytest.raises(OscParseError, match="exceeds"):
        FrameReader().feed(struct.pack(">I", 10_000_000))


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.com")


def test_udp_accepts_60_kib_datagrams(server) -> None:
    srv, got = server
    prompt = "x" * 60_000  # python-osc's stock server drops anything over 8 KiB
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(encode_message("/big", [prompt]), ("127.0.0.1", srv.port))
        item, peer = got.get(timeout=5)
    assert item.address == "/big" and item.params[0] == prompt and peer.proto == "udp"


def test_tcp_framing_and_replies_on_the_same_connection(server) -> None:
    srv, got = server
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(frame(encode_message("/one", [1])) + frame(encode_message("/two", ["x" * 20000])))
        (m1, peer), (m2, _) = got.get(timeout=5), got.get(timeout=5)
        assert (m1.address, m2.address, peer.proto) == ("/one", "/two", "tcp")
        assert srv.send(peer, "/reply", ["ok"])
        r = FrameReader()
        frames: list[bytes] = []
        while not frames:
            frames = r.feed(s.recv(4096))
        assert decode_packet(frames[0])[0].params == ["ok"]
        s.sendall(frame(b"garbage!"))
        bad, _ = got.get(timeout=5)
        assert isinstance(bad, OscParseError)


def test_send_to_a_closed_peer_fails_quietly(server) -> None:
    srv, _ = server
    assert not srv.send(Peer("tcp", "127.0.0.1", 9, 12345), "/x")  # nobody there
    assert not srv.send(Peer("udp", "", 0), "/x")


@liblo
def test_oscsend_udp_and_tcp_reach_the_server(server) -> None:
    srv, got = server
    for url in (f"osc.udp://127.0.0.1:{srv.port}", f"osc.tcp://127.0.0.1:{srv.port}"):
        subprocess.run(["oscsend", url, "/n2m/test", "sif", "hello", "42", "1.5"], check=True, timeout=10)
        item, peer = got.get(timeout=5)
        print(url, item.address, item.params, peer)
        assert item.address == "/n2m/test" and item.params == ["hello", 42, 1.5]


@liblo
@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_server_replies_reach_oscdump(server, proto: str) -> None:
    srv, _ = server
    dump = OscDump(proto)
    try:
        line = None
        for _ in range(100):  # oscdump needs a moment to bind: resend until it prints (bounded)
            srv.send(Peer(proto, "127.0.0.1", dump.port), "/n2m/clip/ready", ["j1", "/tmp/a.wav", 48000, 92.0, 8])
            if (line := dump.next(0.1)) is not None:
                break
        print(line)
        assert line is not None and "/n2m/clip/ready" in line and "/tmp/a.wav" in line and "48000" in line
    finally:
        dump.close()


def test_any_port_skips_a_udp_port_whose_tcp_twin_is_taken(monkeypatch):
    """Port 0: the kernel's free UDP port can have its TCP twin in use. Tried: the first pick made to
    land on a port where another socket listens on TCP; the server takes the next pick and serves
    both transports. A port the user names is not swapped: the bind error comes back, and the UDP
    socket it had opened is closed again."""
    from n2m.bridge import osc

    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    real, picks = osc._bind_pair, []

    def first_pick_taken(host, port, tcp):
        picks.append(port)
        return real(host, taken if len(picks) == 1 else port, tcp)

    monkeypatch.setattr(osc, "_bind_pair", first_pick_taken)
    srv = OscServer("127.0.0.1", 0, lambda item, peer: None)
    try:
        assert len(picks) == 2 and srv.port != taken
        assert srv.udp.getsockname()[1] == srv.tcp.getsockname()[1] == srv.port
    finally:
        srv.close()
    monkeypatch.setattr(osc, "_bind_pair", real)
    with pytest.raises(OSError, match="in use"):
        OscServer("127.0.0.1", taken, lambda item, peer: None)
    free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    free.bind(("127.0.0.1", taken))  # the failed server let go of the UDP port
    free.close()
    busy.close()
