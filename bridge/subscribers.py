"""Who hears the daemon's events besides a request's sender: /n2m/subscribe and /n2m/unsubscribe."""

from __future__ import annotations

import re
import threading
from typing import Any

from n2m.bridge.osc import Peer, is_loopback
from n2m.bridge.request import RequestError, whole

MAX_SUBSCRIBERS = 32


def subscriber_peer(args: list[Any], sender: Peer, allow_remote: bool) -> Peer:
    """The peer named by `host port [udp|tcp]` (or just `port`: the sender's host), or RequestError."""
    if not 1 <= len(args) <= 3:
        raise RequestError("usage: /n2m/subscribe host port [udp|tcp]")
    if len(args) == 1:
        host, port, proto = sender.host, args[0], "udp"
    else:
        host, port = str(args[0]), args[1]
        proto = str(args[2]).lower() if len(args) == 3 else "udp"
    port = whole(port, "port", 1, 65535)
    if proto not in {"udp", "tcp"}:
        raise RequestError(f"protocol {proto!r}: udp or tcp")
    if host == "localhost":
        host = "127.0.0.1"
    if not re.fullmatch(r"[0-9A-Fa-f:.]+", host):
        raise RequestError(f"host {host[:60]!r} must be an IP address")
    if not is_loopback(host) and not allow_remote:
        raise RequestError(f"host {host} is not loopback: the daemon sends only to loopback without --allow-remote")
    return Peer(proto, host, int(port))


class Subscribers:
    """A bounded, thread-safe set of peers, in the order they subscribed."""

    def __init__(self, limit: int = MAX_SUBSCRIBERS) -> None:
        self._peers: list[Peer] = []
        self._lock = threading.Lock()
        self.limit = limit

    def add(self, peer: Peer) -> None:
        with self._lock:
            if peer in self._peers:
                return
            if len(self._peers) >= self.limit:
                raise RequestError(f"too many subscribers (at most {self.limit})")
            self._peers.append(peer)

    def remove(self, peer: Peer) -> None:
        with self._lock:
            if peer not in self._peers:
                raise RequestError(f"{peer} is not subscribed")
            self._peers.remove(peer)

    def targets(self, sender: Peer | None) -> list[Peer]:
        """The sender (if any) then every subscriber, once each."""
        with self._lock:
            peers = list(self._peers)
        return peers if sender is None or sender in peers else [sender, *peers]

    def __len__(self) -> int:
        with self._lock:
            return len(self._peers)
