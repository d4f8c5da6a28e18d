"""OSC transport for the daemon and its clients: UDP up to 64 KiB and TCP with OSC 1.0 framing.

python-osc parses and builds the packets; the sockets are our own. python-osc's stock UDP server
(`socketserver`) silently drops datagrams over 8 KiB, and liblo (oscsend, oscdump) speaks TCP only
with OSC 1.0 framing: every packet is preceded by its length as a 32-bit big-endian integer.

`OscServer` serves both on one port number from one selector thread. Every packet it cannot parse
is reported to the handler as an `OscParseError`, so the daemon can answer it instead of dropping it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from n2m.bridge.protocol import MAX_DATAGRAM

MAX_TCP_FRAME = MAX_DATAGRAM  # a TCP frame may be as large as the largest datagram, no larger
MAX_TCP_CLIENTS = 64
TCP_SEND_TIMEOUT = 2.0  # a client that stops reading for this long is disconnected


class OscParseError(ValueError):
    """A packet that is not valid OSC; the message says what was wrong."""


def encode_message(address: str, args: Iterable[Any] = ()) -> bytes:
    """One OSC message. ints -> i (h beyond 32 bits), floats -> f, str -> s, bytes -> b, bools -> T/F."""
    builder = OscMessageBuilder(address=address)
    for a in args:
        if isinstance(a, bool):
            builder.add_arg(a)
        elif isinstance(a, int) and not -(2**31) <= a < 2**31:
            builder.add_arg(a, OscMessageBuilder.ARG_TYPE_INT64)
        else:
            builder.add_arg(a)
    return builder.build().dgram


_TYPE_TAGS = frozenset("ihfdsbrmtTFN[]")  # what python-osc parses; S, c, I are refused
MAX_BUNDLE_DEPTH = 8


def _check_message(data: bytes) -> OscMessage:
    """One message, with every type tag checked (python-osc skips unknown tags with a log line)."""
    end = data.find(b"\0")
    if end <= 0 or not data.startswith(b"/"):
        raise OscParseError("a message must start with an address beginning with '/'")
    tags_at = (end // 4 + 1) * 4
    if tags_at < len(data):
        if data[tags_at : tags_at + 1] != b",":
            raise OscParseError("missing type tag string")
        tag_end = data.find(b"\0", tags_at)
        if tag_end < 0:
            raise OscParseError("unterminated type tag string")
        bad = set(data[tags_at + 1 : tag_end].decode("latin-1")) - _TYPE_TAGS
        if bad:
            raise OscParseError(f"unknown type tag(s) {''.join(sorted(bad))!r}")
    try:
        msg = OscMessage(data)
        _ = msg.params  # parsed eagerly; force errors out here
    except Exception as exc:  # python-osc raises ParseError, odd inputs give other errors too
        raise OscParseError(f"not an OSC message: {exc}") from None
    if not isinstance(msg.address, str) or not msg.address.startswith("/"):
        raise OscParseError(f"bad OSC address {msg.address!r}")
    return msg


def decode_packet(data: bytes) -> list[OscMessage]:
    """The messages of one packet (bundles flattened in order, depth-limited), or OscParseError."""
    if not data:
        raise OscParseError("empty packet")
    if len(data) % 4:
        raise OscParseError(f"packet length {len(data)} is not a multiple of 4")
    out: list[OscMessage] = []
    stack: list[tuple[bytes, int]] = [(data, 0)]
    while stack:
        pkt, depth = stack.pop()
        if not pkt.startswith(b"#bundle\0"):
            out.append(_check_message(pkt))
            continue
        if depth >= MAX_BUNDLE_DEPTH:
            raise OscParseError(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
        if len(pkt) < 16:
            raise OscParseError("bundle without a time tag")
        i, elems = 16, []
        while i < len(pkt):
            if i + 4 > len(pkt):
                raise OscParseError("truncated bundle element size")
            (n,) = struct.unpack(">i", pkt[i : i + 4])
            if n <= 0 or n % 4 or i + 4 + n > len(pkt):
                raise OscParseError(f"bad bundle element size {n}")
            elems.append((pkt[i + 4 : i + 4 + n], depth + 1))
            i += 4 + n
        stack.extend(reversed(elems))
        if len(out) + len(stack) > 1024:
            raise OscParseError("too many messages in one bundle")
    return out


def frame(packet: bytes) -> bytes:
    """OSC 1.0 stream framing: 32-bit big-endian length, then the packet."""
    return struct.pack(">I", len(packet)) + packet


@dataclass
class FrameReader:
    """Splits a TCP byte stream into OSC 1.0 frames; too-large frames are an error."""

    max_frame: int = MAX_TCP_FRAME
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= 4:
            (n,) = struct.unpack(">I", self._buf[:4])
            if n > self.max_frame:
                raise OscParseError(f"TCP frame of {n} bytes exceeds the limit of {self.max_frame}")
            if len(self._buf) < 4 + n:
                break
            out.append(bytes(self._buf[4 : 4 + n]))
            del self._buf[: 4 + n]
        return out


def is_loopback(host: str) -> bool:
    """True for loopback addresses and names ("127.0.0.1", "::1", "localhost")."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Peer:
    """Where a packet came from, and so where its replies go."""

    proto: str  # "udp" or "tcp"
    host: str
    port: int
    conn_id: int = 0  # for tcp: the connection it arrived on

    def __str__(self) -> str:
        return f"{self.proto}://{self.host}:{self.port}"


Handler = Callable[[OscMessage | OscParseError, Peer], None]


class _TcpConn:
    def __init__(self, sock: socket.socket, peer: Peer) -> None:
        self.sock = sock
        self.peer = peer
        self.reader = FrameReader()
        self.lock = threading.Lock()
        self.closed = False


def _bind_pair(host: str, port: int, tcp: bool) -> tuple[socket.socket, socket.socket | None]:
    """A UDP socket bound to (host, port) and, with `tcp`, a listening TCP socket on the same port
    number; both closed again if either bind fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    stream: socket.socket | None = None
    try:
        udp.bind((host, port))
        udp.setblocking(False)
        with contextlib.suppress(OSError):
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        if tcp:
            stream = socket.socket(family, socket.SOCK_STREAM)
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            stream.bind((host, udp.getsockname()[1]))
            stream.listen(16)
            stream.setblocking(False)
    except OSError:
        udp.close()
        if stream is not None:
            stream.close()
        raise
    return udp, stream


class OscServer:
    """UDP and TCP OSC on one host/port, served by one selector thread.

    `handler(message_or_error, peer)` runs on the server thread for each message (or each packet
    that failed to parse). `send(peer, address, args)` may be called from any thread.
    """

    def __init__(self, host: str, port: int, handler: Handler, tcp: bool = True) -> None:
        self.handler = handler
        self.tcp: socket.socket | None = None
        # Port 0 asks for any free port: the kernel picks a free UDP port, but its TCP twin can be
        # taken (another socket's ephemeral port), so a few picks are tried. A port given by the
        # user is tried once and the error names it.
        for attempt in range(1 if port else 20):
            try:
                self.udp, self.tcp = _bind_pair(host, port, tcp)
                break
            except OSError:
                if port or attempt == 19:
                    raise
        self.host, self.port = host, self.udp.getsockname()[1]
        self._conns: dict[int, _TcpConn] = {}
        self._conns_lock = threading.Lock()
        self._out_sockets: dict[tuple[str, int], socket.socket] = {}  # outgoing tcp to subscribers
        self._out_lock = threading.Lock()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = {"packets": 0, "bad_packets": 0, "tcp_connections": 0}
        self._rbuf = bytearray(MAX_DATAGRAM + 1)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._sel.register(self.udp, selectors.EVENT_READ, "udp")
        if self.tcp is not None:
            self._sel.register(self.tcp, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._loop, name="n2m-osc", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._conns_lock:
            conns = list(self._conns.values())
            self._conns.clear()
        for c in conns:
            c.closed = True
            c.sock.close()
        with self._out_lock:
            for s in self._out_sockets.values():
                s.close()
            self._out_sockets.clear()
        for s in (self.udp, self.tcp, self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._sel.close()

    # -- serving ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                events = self._sel.select(timeout=1.0)
            except OSError:
                continue
            for key, _ in events:
                kind = key.data
                try:
                    if kind == "udp":
                        self._read_udp()
                    elif kind == "accept":
                        self._accept()
                    elif kind == "wake":
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(64)
                    else:
                        self._read_tcp(kind)
                except Exception as exc:  # never let one bad client stop the loop
                    self._safe_handle(OscParseError(f"internal error reading a packet: {exc}"),
                                      Peer("udp", "", 0))

    def _safe_handle(self, item: OscMessage | OscParseError, peer: Peer) -> None:
        try:
            self.handler(item, peer)
        except Exception:  # the handler reports its own errors; a bug there must not kill serving
            import traceback

            traceback.print_exc()

    def _dispatch(self, data: bytes, peer: Peer) -> None:
        self.stats["packets"] += 1
        try:
            msgs = decode_packet(data)
        except OscParseError as exc:
            self.stats["bad_packets"] += 1
            self._safe_handle(exc, peer)
            return
        for m in msgs:
            self._safe_handle(m, peer)

    def _read_udp(self) -> None:
        for _ in range(256):  # drain, bounded
            try:
                n, addr = self.udp.recvfrom_into(self._rbuf)  # one reused buffer: no 64 KiB churn
                data = bytes(self._rbuf[:n])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable surfacing as ECONNREFUSED on Linux
                continue
            peer = Peer("udp", addr[0], addr[1])
            if len(data) > MAX_DATAGRAM:
                self.stats["bad_packets"] += 1
                self._safe_handle(OscParseError(f"datagram larger than {MAX_DATAGRAM} bytes"), peer)
                continue
            self._dispatch(data, peer)

    def _accept(self) -> None:
        if self.tcp is None:  # only registered when the TCP socket exists
            return
        try:
            sock, addr = self.tcp.accept()
        except (BlockingIOError, InterruptedError, OSError):
            return
        with self._conns_lock:
            if len(self._conns) >= MAX_TCP_CLIENTS:
                sock.close()
                return
            sock.settimeout(TCP_SEND_TIMEOUT)
            conn = _TcpConn(sock, Peer("tcp", addr[0], addr[1], sock.fileno()))
            self._conns[sock.fileno()] = conn
        self.stats["tcp_connections"] += 1
        self._sel.register(sock, selectors.EVENT_READ, conn)

    def _drop(self, conn: _TcpConn) -> None:
        with self._conns_lock:
            self._conns.pop(conn.peer.conn_id, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._sel.unregister(conn.sock)
        with conn.lock:
            conn.closed = True
            conn.sock.close()

    def _read_tcp(self, conn: _TcpConn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:
            self._drop(conn)
            return
        if not data:
            self._drop(conn)
            return
        try:
            frames = conn.reader.feed(data)
        except OscParseError as exc:  # a stream that lost its framing cannot be resynchronised
            self.stats["bad_packets"] += 1
            self._safe_handle(exc, conn.peer)
            self._drop(conn)
            return
        for f in frames:
            self._dispatch(f, conn.peer)

    # -- sending ---------------------------------------------------------------------------------
    def send(self, peer: Peer, address: str, args: Iterable[Any] = ()) -> bool:
        """Send one message to a peer; False (never an exception) when it cannot be delivered."""
        packet = encode_message(address, args)
        if peer.proto == "udp":
            if not peer.host:
                return False
            try:
                self.udp.sendto(packet, (peer.host, peer.port))
                return True
            except OSError:
                return False
        with self._conns_lock:
            conn = self._conns.get(peer.conn_id)
        if conn is None or conn.peer != peer:
            return self._send_tcp_out(peer, packet)
        with conn.lock:
            if conn.closed:
                return False
            try:
                conn.sock.sendall(frame(packet))
                return True
            except OSError:
                pass
        self._drop(conn)
        return False

    def _send_tcp_out(self, peer: Peer, packet: bytes) -> bool:
        """TCP to a subscriber (e.g. `oscdump -T`): one outgoing connection per address, reused."""
        key = (peer.host, peer.port)
        with self._out_lock:
            for attempt in range(2):
                sock = self._out_sockets.get(key)
                try:
                    if sock is None:
                        sock = socket.create_connection(key, timeout=TCP_SEND_TIMEOUT)
                        self._out_sockets[key] = sock
                    sock.sendall(frame(packet))
                    return True
                except OSError as exc:
                    if sock is not None:
                        sock.close()
                    self._out_sockets.pop(key, None)
                    if attempt or exc.errno == errno.ECONNREFUSED:
                        return False
        return False

    @property
    def tcp_clients(self) -> int:
        with self._conns_lock:
            return len(self._conns)
