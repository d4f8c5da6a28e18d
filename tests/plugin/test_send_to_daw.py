"""'Send to DAW' from the panel reaches a DAW's OSC port through the bridge's real adapters."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtCore import QObject

from n2m.bridge import daw as adapters
from n2m.bridge.osc import decode_packet
from n2m.plugin import daw


def _clip(tmp_path: Path) -> Path:
    import wave

    p = tmp_path / "clip.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes((np.sin(np.arange(4800) / 10) * 8000).astype("<i2").tobytes())
    return p


@pytest.fixture
def fake_bitwig(monkeypatch):
    """A UDP socket on loopback standing where DrivenByMoss listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    monkeypatch.setitem(adapters.ADAPTERS, "bitwig", adapters.Bitwig(port=sock.getsockname()[1], track=2, slot=3))
    yield sock
    sock.close()


def test_send_async_places_clip_over_osc(qtbot, tmp_path, fake_bitwig):
    clip = _clip(tmp_path)
    parent = QObject()
    results: list[tuple[bool, str]] = []
    daw.send_async(parent, str(clip), "bitwig", lambda ok, msg: results.append((ok, msg)))
    qtbot.waitUntil(lambda: bool(results), timeout=5000)
    assert results[0][0] is True and "Bitwig" in results[0][1]
    (msg,) = decode_packet(fake_bitwig.recv(65536))
    assert msg.address == "/track/2/clip/3/insertFile"
    assert msg.params == [str(clip.resolve())]


def test_send_failures_reach_the_panel_as_text(qtbot, tmp_path):
    """Inputs tried: an unknown DAW name, and a clip file that no longer exists."""
    parent = QObject()
    results: list[tuple[bool, str]] = []
    daw.send_async(parent, str(_clip(tmp_path)), "protools", lambda ok, m: results.append((ok, m)))
    daw.send_async(parent, str(tmp_path / "gone.wav"), "bitwig", lambda ok, m: results.append((ok, m)))
    qtbot.waitUntil(lambda: len(results) == 2, timeout=5000)
    msgs = sorted(m for ok, m in results if not ok)
    assert len(msgs) == 2
    assert any("unknown DAW 'protools'" in m for m in msgs) and any("no clip at" in m for m in msgs)
    assert daw.available() and daw.names() == ["ardour", "bitwig", "live", "reaper"]
