"""DAW adapters: the OSC each DAW receives (a loopback socket stands in for the DAW) and the hand-off."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from n2m.bridge import protocol as P
from n2m.bridge.daw import (
    ADAPTERS,
    SCRIPTS,
    Ardour,
    Bitwig,
    Live,
    Reaper,
    send_clip,
    tempo_from_feedback,
)
from n2m.bridge.osc import decode_packet, encode_message


@pytest.fixture
def fake_daw():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    yield s
    s.close()


@pytest.fixture
def clip(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("N2M_DAW_HANDOFF", str(tmp_path / "handoff" / "next_clip.txt"))
    p = tmp_path / "clip one.wav"
    p.write_bytes(b"RIFF")
    return p


def received(s: socket.socket) -> tuple[str, list]:
    (m,) = decode_packet(s.recv(65536))
    return m.address, list(m.params)


def test_reaper_and_ardour_get_the_action_and_the_handoff_names_the_clip(fake_daw, clip: Path, tmp_path: Path) -> None:
    port = fake_daw.getsockname()[1]
    Reaper(port=port).send(str(clip))
    assert received(fake_daw) == ("/action/_N2M_INSERT_CLIP", [])
    Ardour(port=port, action="LuaAction/script-3").send(str(clip))
    assert received(fake_daw) == ("/access_action", ["LuaAction/script-3"])
    assert (tmp_path / "handoff" / "next_clip.txt").read_text().strip() == str(clip.resolve())


def test_bitwig_and_live_get_the_path_in_the_message(fake_daw, clip: Path) -> None:
    port = fake_daw.getsockname()[1]
    Bitwig(port=port, track=2, slot=3).send(str(clip))
    assert received(fake_daw) == ("/track/2/clip/3/insertFile", [str(clip.resolve())])
    Live(port=port, track=1, slot=4).send(str(clip))
    assert received(fake_daw) == ("/live/clip_slot/create_audio_clip", [1, 4, str(clip.resolve())])


def test_live_tempo_query_against_an_abletonosc_stand_in(fake_daw) -> None:
    port = fake_daw.getsockname()[1]
    answers = {"/live/song/get/tempo": 92.5, "/live/song/get/signature_numerator": 3,
               "/live/song/get/signature_denominator": 4}

    def serve() -> None:
        for _ in range(3):
            data, addr = fake_daw.recvfrom(65536)
            (m,) = decode_packet(data)
            fake_daw.sendto(encode_message(m.address, [answers[m.address]]), ("127.0.0.1", 11001))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert Live(port=port).query_tempo(timeout=5) == (92.5, 3, 4)
    t.join(5)


def test_unknown_daw_and_missing_clip_are_refused(clip: Path) -> None:
    with pytest.raises(ValueError, match="unknown DAW 'protools'"):
        send_clip(str(clip), "protools")
    with pytest.raises(FileNotFoundError):
        send_clip(str(clip.with_name("missing.wav")), "bitwig")
    assert sorted(ADAPTERS) == ["ardour", "bitwig", "live", "reaper"]


def test_feedback_becomes_daemon_sync() -> None:
    assert tempo_from_feedback("/tempo/raw", [128.0]) == (P.SET_TEMPO, [128.0])
    assert tempo_from_feedback("/live/song/get/tempo", [90]) == (P.SET_TEMPO, [90.0])
    assert tempo_from_feedback("/track/1/volume", [0.5]) is None


def test_scripts_ship_with_the_package() -> None:
    lua = (SCRIPTS / "ardour" / "n2m_import_clip.lua").read_text()
    assert "do_import" in lua and "EditorAction" in lua
    assert "InsertMedia" in (SCRIPTS / "reaper" / "n2m_insert_clip.lua").read_text()
