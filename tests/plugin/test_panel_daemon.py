"""The panel against a real `n2m serve` (tiny random-weight model), over real OSC on loopback.

Type a prompt, generate, see progress, see the clip listed with its waveform, play it, drag it,
cancel jobs, follow the DAW's tempo, survive a daemon restart, and start a daemon when none runs.
"""

from __future__ import annotations

import json
import socket
import wave
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt
from pythonosc.udp_client import SimpleUDPClient

from n2m.plugin.clipspane import library_clip
from n2m.plugin.osclink import DaemonAddress

WAIT = 90_000  # ms: generous deadlines for a shared, busy machine; never asserted as timings
SHORT = "tiny test loop, 120 bpm, 1 bars"  # 2 s at 120 bpm in 4/4


def _panel(qtbot, qsettings, port: int, **kw):
    from n2m.plugin.panel import Panel

    panel = Panel(qsettings, daemon=DaemonAddress("127.0.0.1", port), autostart=kw.pop("autostart", False))
    qtbot.addWidget(panel)
    panel.resize(340, 760)
    panel.show()
    panel.start()
    return panel


@pytest.fixture
def panel(qtbot, qsettings, daemon):
    p = _panel(qtbot, qsettings, daemon.port)
    qtbot.waitUntil(lambda: p.link.online, timeout=WAIT)
    p.quality.setCurrentIndex(0)  # Draft: few steps
    p.variations.setValue(1)  # one take per Generate (the default is DEFAULT_TAKES)
    yield p
    p.shutdown()


def _generate(qtbot, panel, prompt: str = SHORT):
    panel.prompt.clear()
    qtbot.keyClicks(panel.prompt, prompt)
    qtbot.keyClick(panel.prompt, Qt.Key.Key_Return)
    assert panel.error_text() == ""
    job = panel.jobs[-1]
    assert job.request.prompt == prompt
    return job


def _library_favourite(library: Path, path: str) -> int | None:
    import sqlite3

    with sqlite3.connect(library) as db:  # the daemon's own SQLite library, read as a second client
        row = db.execute("SELECT favourite FROM clips WHERE path=?", (path,)).fetchone()
    return None if row is None else int(row[0])


def test_generate_progress_clip_waveform_play_and_drag(qtbot, panel, daemon):
    seen: list[tuple[str, str, float]] = []
    panel.job_changed.connect(lambda j: seen.append((j.state, j.stage, j.fraction)))
    job = _generate(qtbot, panel)
    qtbot.waitUntil(lambda: job.state == "finished", timeout=WAIT)

    # progress: the daemon named the job, reported stages with fractions, and finished it
    assert job.id
    running = [s for s in seen if s[0] == "running"]
    assert running and all(0.0 <= f <= 1.0 for _, _, f in running)
    assert len({stage for _, stage, _ in running}) >= 2
    row = panel._rows[id(job)]
    assert row.detail.full_text() == "done · 1 clip"

    # the clip is listed, with its prompt, tempo and length, and a waveform read from the file
    assert panel.model.rowCount() == 1
    clip = panel.model.clip(0)
    assert Path(clip.path).is_file() and clip.path == job.clips[0]
    assert clip.prompt == SHORT and clip.bpm == pytest.approx(120.0) and clip.bars == 1
    assert clip.seed is not None and clip.seconds == pytest.approx(2.0, abs=0.05)
    with wave.open(clip.path, "rb") as w:
        assert w.getsampwidth() == 3  # the daemon's default 24-bit WAV
    qtbot.waitUntil(lambda: panel.cache.get(clip.path) is not None, timeout=WAIT)
    peaks = panel.cache.get(clip.path)
    assert peaks.seconds == pytest.approx(clip.seconds, abs=0.01) and float(peaks.high.max()) > 0.0
    assert panel.clips_title.text() == "CLIPS · 1"

    # play with Space on the list, see the play cursor move, stop with Space
    panel.view.setFocus()
    panel.view.setCurrentIndex(panel.model.index(0))
    qtbot.keyClick(panel.view, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: panel.player.positions_seen > 0 or not panel.player.is_playing(), timeout=WAIT)
    assert panel.player.path == clip.path
    assert panel.player.positions_seen > 0 or panel.player.is_playing() is False
    if panel.player.is_playing():
        assert panel.play_btn.text() == "■"
        qtbot.keyClick(panel.view, Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: not panel.player.is_playing(), timeout=WAIT)
    assert panel.play_btn.text() == "▶"
    assert panel.error_text() == ""

    # the drag's mime data: a fresh read-only copy as a file URL
    mime = panel.model.mimeData([panel.model.index(0)])
    copy = Path(mime.urls()[0].toLocalFile())
    assert copy != Path(clip.path) and copy.read_bytes() == Path(clip.path).read_bytes()

    # favourite is remembered with the clip, in the daemon's clip library
    panel.toggle_favourite()
    assert panel.model.clip(0).favourite and panel.fav_btn.text() == "★"
    path = panel.model.clip(0).path
    qtbot.waitUntil(lambda: _library_favourite(daemon.library, path) == 1, timeout=WAIT)
    # ... which lists it so when a panel asks for its clips
    listed: list = []
    panel.link.message.connect(lambda a, args: listed.extend(json.loads(args[0])) if a == "/n2m/clips" else None)
    panel.link.send("/n2m/clips", ["", 5])
    qtbot.waitUntil(lambda: bool(listed), timeout=WAIT)
    assert library_clip(listed[0]).path == path and library_clip(listed[0]).favourite is True


def test_cancel_a_queued_and_a_running_job(qtbot, panel):
    panel.quality.setCurrentIndex(2)  # High: 50 steps, so the first job runs for a while
    panel.length_unit.setCurrentText("sec")
    panel.length.setValue(20)
    first = _generate(qtbot, panel, "long ambient pad")
    second = _generate(qtbot, panel, "second pad in the queue")
    qtbot.waitUntil(lambda: first.state == "running" and bool(second.id), timeout=WAIT)
    assert panel.queue_title.text() == "QUEUE · 2 active"

    panel._rows[id(second)].cancel.click()  # the row's ✕
    qtbot.waitUntil(lambda: second.state == "cancelled", timeout=WAIT)

    qtbot.keyClick(panel, Qt.Key.Key_Escape)  # Esc cancels the newest active job: the running one
    qtbot.waitUntil(lambda: not first.active, timeout=WAIT)
    assert first.state == "cancelled"
    assert panel.model.rowCount() == 0
    assert panel.queue_title.text() == "QUEUE"


def test_vary_makes_a_new_seed_of_the_same_prompt(qtbot, panel):
    job = _generate(qtbot, panel)
    qtbot.waitUntil(lambda: job.state == "finished", timeout=WAIT)
    original = panel.model.clip(0)
    panel.view.setCurrentIndex(panel.model.index(0))
    varied = panel.vary()
    assert varied is not None
    qtbot.waitUntil(lambda: varied.state == "finished", timeout=WAIT)
    new = panel.model.clip(0)
    assert new.path != original.path and new.prompt == original.prompt and new.seed != original.seed


def test_sync_shows_the_tempo_and_meter_the_daw_reported(qtbot, panel, daemon):
    daw = SimpleUDPClient("127.0.0.1", daemon.port)  # a DAW script talking to the daemon
    daw.send_message("/n2m/set/tempo", 96.0)
    daw.send_message("/n2m/set/meter", [3, 4])
    qtbot.waitUntil(lambda: "96 bpm · 3/4" in panel.sync_label.full_text(), timeout=WAIT)
    assert panel.sync_box.isChecked()
    req = panel.current_request()
    assert req.bpm == 96.0 and req.meter == "3/4"


def test_survives_a_daemon_restart(qtbot, panel, daemon):
    port = daemon.port
    daemon.stop()
    qtbot.waitUntil(lambda: not panel.link.online, timeout=WAIT)
    assert "reconnecting" in panel.conn_label.full_text()
    # a request made while the daemon is away waits, then goes when it is back
    job = _generate(qtbot, panel)
    assert "waiting for the daemon" in job.message
    daemon.port = port
    daemon.start()
    qtbot.waitUntil(lambda: panel.link.online, timeout=WAIT)
    qtbot.waitUntil(lambda: job.state == "finished", timeout=WAIT)
    assert panel.model.clip(0).path == job.clips[0]
    assert panel.dot.state == "online"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_starts_a_daemon_when_none_answers(qtbot, qsettings, request, tmp_path):
    try:
        model = request.getfixturevalue("tiny_model_dir")
    except pytest.FixtureLookupError:
        pytest.skip("needs the `tiny_model_dir` fixture (tests/conftest.py), which is not there yet")
    from n2m.plugin.panel import Panel
    from n2m.plugin.settings import PanelSettings

    port = _free_port()
    store_panel = Panel(qsettings, autostart=False)  # write the settings a producer would have
    store_panel.apply_settings(PanelSettings(daemon=f"127.0.0.1:{port}", output_dir=str(tmp_path / "out"),
                                             model=str(model), autostart=True))
    store_panel.shutdown()
    panel = Panel(qsettings)
    qtbot.addWidget(panel)
    panel.start()
    qtbot.waitUntil(lambda: panel.daemon_proc.running, timeout=WAIT)
    qtbot.waitUntil(lambda: panel.link.online, timeout=WAIT)
    assert panel.last_status.get("out_dir") == str(tmp_path / "out") or panel.link.online
    pid = panel.daemon_proc.pid()
    assert pid > 0
    panel.shutdown()  # stops the daemon it started
    assert not panel.daemon_proc.running


def test_screenshot_command_renders_after_a_real_generation(qtbot, request, tmp_path, monkeypatch):
    try:
        model = request.getfixturevalue("tiny_model_dir")
    except pytest.FixtureLookupError:
        pytest.skip("needs the `tiny_model_dir` fixture (tests/conftest.py), which is not there yet")
    import os
    import subprocess
    import sys

    from PyQt6.QtGui import QImage

    # the real command in its own process, as a producer or CI would run it
    env = dict(os.environ, N2M_HOME=str(tmp_path / "home"), QT_QPA_PLATFORM="offscreen")
    png = tmp_path / "panel.png"
    proc = subprocess.run(
        [sys.executable, "-m", "n2m.bridge.cli", "panel", "--screenshot", str(png), "--model", str(model),
         "--daemon", f"127.0.0.1:{_free_port()}", "--size", "340x760", "--timeout", "120"],
        env=env, capture_output=True, text=True, timeout=240)
    rc = proc.returncode
    assert rc == 0, proc.stderr[-2000:]
    img = QImage(str(png))
    assert (img.width(), img.height()) == (340, 760)
    assert len(list((tmp_path / "home" / "clips").glob("*.wav"))) == 2  # the first job's two takes
    colours = {img.pixel(x, y) for x in range(0, 340, 7) for y in range(0, 760, 7)}
    assert len(colours) > 20  # a real picture, not a blank window
