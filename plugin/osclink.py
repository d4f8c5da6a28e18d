"""The panel's line to the daemon: OSC over a QUdpSocket, driven by the Qt event loop.

Nothing here blocks: datagrams are sent with writeDatagram and read on readyRead, so the GUI
thread never waits on the network. Replies come back to this socket because the daemon answers
the sender. A heartbeat (`/n2m/test`, then `/n2m/status`) tells whether the daemon is alive; when
it stops answering the link goes offline, and when it answers again (a restart) the link comes
back online and subscribes again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from PyQt6.QtCore import QObject, QTimer, pyqtSignal
from PyQt6.QtNetwork import QAbstractSocket, QHostAddress, QUdpSocket

from n2m.bridge import protocol
from n2m.bridge.osc import OscParseError, decode_packet, encode_message

OscArg = str | int | float | bool | bytes


@dataclass(frozen=True)
class DaemonAddress:
    host: str = protocol.DEFAULT_HOST
    port: int = protocol.DEFAULT_PORT

    @classmethod
    def parse(cls, text: str) -> DaemonAddress:
        """"HOST:PORT", "PORT" or "HOST"; ValueError with the reason."""
        t = text.strip()
        if not t:
            return cls()
        if ":" in t:
            host, port = t.rsplit(":", 1)
        elif t.isdigit():
            host, port = "", t
        else:
            host, port = t, ""
        try:
            p = int(port) if port else protocol.DEFAULT_PORT
        except ValueError:
            raise ValueError(f"bad port in {text!r}: expected HOST:PORT such as 127.0.0.1:9797") from None
        if not 1 <= p <= 65535:
            raise ValueError(f"port {p} out of range 1-65535")
        return cls(host or protocol.DEFAULT_HOST, p)

    @property
    def is_local(self) -> bool:
        return self.host in {"127.0.0.1", "localhost", "::1"} or self.host.startswith("127.")

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def encode(address: str, args: list[OscArg] | tuple[OscArg, ...] = ()) -> bytes:
    return encode_message(address, args)


def decode(datagram: bytes) -> list[tuple[str, list]]:
    """Messages in an OSC datagram (a message or a bundle); [] for anything malformed."""
    try:
        return [(m.address, list(m.params)) for m in decode_packet(datagram)]
    except OscParseError:
        return []


class OscLink(QObject):
    """UDP OSC link with heartbeat and reconnection. Signals carry decoded messages."""

    message = pyqtSignal(str, list)  # address, args
    online_changed = pyqtSignal(bool)
    socket_error = pyqtSignal(str)

    def __init__(
        self,
        address: DaemonAddress,
        parent: QObject | None = None,
        heartbeat_ms: int = 1000,
        offline_after_s: float = 3.5,
    ) -> None:
        super().__init__(parent)
        self._address = address
        self._offline_after = offline_after_s
        self._last_heard = 0.0
        self._online = False
        self.subscribe_events = True
        self._socket = QUdpSocket(self)
        self._socket.readyRead.connect(self._read)
        self._socket.errorOccurred.connect(self._on_error)
        self._bind()
        self._timer = QTimer(self)
        self._timer.setInterval(heartbeat_ms)
        self._timer.timeout.connect(self._heartbeat)

    # -- lifecycle -------------------------------------------------------------------------------
    def _bind(self) -> None:
        bind_to = QHostAddress(QHostAddress.SpecialAddress.LocalHost if self._address.is_local
                               else QHostAddress.SpecialAddress.AnyIPv4)
        if not self._socket.bind(bind_to, 0):
            self.socket_error.emit(f"cannot open a UDP socket: {self._socket.errorString()}")

    def start(self) -> None:
        self._timer.start()
        self._heartbeat()

    def stop(self) -> None:
        self._timer.stop()
        if self._online and self.subscribe_events:
            self.send(protocol.UNSUBSCRIBE, [self.local_host, self.local_port])
        self._socket.close()

    @property
    def address(self) -> DaemonAddress:
        return self._address

    def set_address(self, address: DaemonAddress) -> None:
        if address == self._address:
            return
        self._address = address
        self._socket.close()
        self._bind()
        self._set_online(False)
        self._heartbeat()

    @property
    def online(self) -> bool:
        return self._online

    @property
    def local_port(self) -> int:
        return int(self._socket.localPort())

    @property
    def local_host(self) -> str:
        return "127.0.0.1" if self._address.is_local else self._socket.localAddress().toString()

    # -- traffic ---------------------------------------------------------------------------------
    def send(self, address: str, args: list[OscArg] | tuple[OscArg, ...] = ()) -> bool:
        data = encode(address, args)
        n = self._socket.writeDatagram(data, QHostAddress(self._resolve_host()), self._address.port)
        return n == len(data)

    def _resolve_host(self) -> str:
        return "127.0.0.1" if self._address.host == "localhost" else self._address.host

    def _read(self) -> None:
        while self._socket.hasPendingDatagrams():
            dg = self._socket.receiveDatagram()
            if dg.senderPort() != self._address.port:
                continue  # only the daemon talks to this socket
            self._last_heard = time.monotonic()
            self._set_online(True)
            for address, args in decode(bytes(dg.data())):
                self.message.emit(address, args)

    def _heartbeat(self) -> None:
        if self._online and time.monotonic() - self._last_heard > self._offline_after:
            self._set_online(False)
        self.send(protocol.TEST)
        if self._online:
            self.send(protocol.STATUS)

    def _set_online(self, online: bool) -> None:
        if online == self._online:
            return
        self._online = online
        if online and self.subscribe_events:
            self.send(protocol.SUBSCRIBE, [self.local_host, self.local_port])
        self.online_changed.emit(online)

    def _on_error(self, err: QAbstractSocket.SocketError) -> None:
        # ICMP "port unreachable" while the daemon is down arrives as ConnectionRefused: expected.
        if err != QAbstractSocket.SocketError.ConnectionRefusedError:
            self.socket_error.emit(self._socket.errorString())
