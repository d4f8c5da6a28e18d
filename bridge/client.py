"""A small OSC client for the daemon: send a request, await the replies (for the panel and tests).

    with N2mClient() as c:                      # UDP to 127.0.0.1:9797, replies to our own socket
        job = c.generate("dusty boom-bap", bpm=88, bars=8)
        for msg in c.follow(job, timeout=120):  # /n2m/progress, /n2m/clip/ready, ... /n2m/done
            print(msg.address, msg.params)

Synchronous and thread-free: call it from a worker thread in a GUI.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from n2m.bridge import protocol as P
from n2m.bridge.osc import FrameReader, OscParseError, decode_packet, encode_message, frame


@dataclass(frozen=True)
class Reply:
    address: str
    params: tuple[Any, ...]


class N2mClient:
    def __init__(self, host: str = P.DEFAULT_HOST, port: int = P.DEFAULT_PORT,
                 proto: str = "udp", timeout: float = 5.0) -> None:
        if proto not in {"udp", "tcp"}:
            raise ValueError(f"proto must be 'udp' or 'tcp', got {proto!r}")
        self.host, self.port, self.proto, self.timeout = host, port, proto, timeout
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if proto == "udp":
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self._reader = FrameReader()
        self._pending: deque[Reply] = deque()
        self._tags = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> N2mClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    # -- raw -------------------------------------------------------------------------------------
    def send_raw(self, packet: bytes) -> None:
        if self.proto == "udp":
            self.sock.sendto(packet, (self.host, self.port))
        else:
            self.sock.sendall(frame(packet))

    def send(self, address: str, *args: Any) -> None:
        self.send_raw(encode_message(address, args))

    def _read_some(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            if self.proto == "udp":
                data = self.sock.recv(P.MAX_DATAGRAM + 1)
                packets = [data]
            else:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("the daemon closed the TCP connection")
                packets = self._reader.feed(data)
        except TimeoutError:
            return False
        for p in packets:
            try:
                for m in decode_packet(p):
                    self._pending.append(Reply(m.address, tuple(m.params)))
            except OscParseError:
                continue
        return True

    def receive(self, timeout: float | None = None) -> Reply | None:
        """The next reply, or None after `timeout` seconds."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._pending:
            if not self._read_some(deadline):
                return None
        return self._pending.popleft()

    def wait_for(self, match: Callable[[Reply], bool], timeout: float | None = None) -> Reply:
        """The first reply that matches (others are kept for later), or TimeoutError."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        seen = 0
        while True:
            for i, r in enumerate(list(self._pending)[seen:], start=seen):
                if match(r):
                    del self._pending[i]
                    return r
            seen = len(self._pending)
            if not self._read_some(deadline):
                raise TimeoutError("no matching reply from the n2m daemon")

    def request(self, address: str, *args: Any, reply: str | None = None,
                timeout: float | None = None) -> Reply:
        """Send and wait for `reply` (default: the same address) or an /n2m/error."""
        self.send(address, *args)
        want = reply or address
        return self.wait_for(lambda r: r.address in {want, P.ERROR}, timeout)

    # -- the namespace -------------------------------------------------------------------------
    def generate(self, prompt: str, timeout: float | None = None, **controls: Any) -> str:
        """Queue a generation; returns the job id, or raises RuntimeError with the daemon's reason.
        The request carries a tag of its own, so its /n2m/job is told apart from other senders'."""
        return self._queue(P.GENERATE, [prompt], controls, timeout)

    def edit(self, kind: str, source: str | int, timeout: float | None = None, **options: Any) -> str:
        """Queue an edit ("vary", "extend" or "inpaint") of a file path or a library clip id, e.g.
        `edit("extend", 12, bars=2)`; returns the job id, or raises RuntimeError as `generate` does."""
        return self._queue(P.EDIT_ADDRESSES[kind], [source], options, timeout)

    def _queue(self, address: str, first: list[Any], options: dict[str, Any], timeout: float | None) -> str:
        self._tags += 1
        tag = str(options.pop("tag", None) or f"c{self.local_port}-{self._tags}")
        args = first + [f"{k}={v}" for k, v in options.items() if v is not None] + [f"tag={tag}"]
        self.send(address, *args)
        r = self.wait_for(lambda r: (r.address == P.JOB and len(r.params) > 1 and r.params[1] == tag)
                          or (r.address == P.ERROR and r.params[:1] == ("",) and r.params[2:3] in ((), (tag,))),
                          timeout)
        if r.address == P.ERROR:
            raise RuntimeError(str(r.params[1] if len(r.params) > 1 else r.params))
        return str(r.params[0])

    def follow(self, job_id: str, timeout: float = 600.0) -> Iterator[Reply]:
        """Every reply about one job until its /n2m/done (inclusive)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            r = self.wait_for(lambda r: bool(r.params) and str(r.params[0]) == job_id, max(left, 0.0))
            yield r
            if r.address == P.DONE:
                return
