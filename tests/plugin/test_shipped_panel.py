"""The panel with the shipped default model, as a producer first meets it: the form's default
request (takes, quality) through a real `n2m serve`, and `n2m panel --screenshot` with the daemon
the panel starts itself. No fixture model, no thread counts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt

from n2m.plugin.jobs import DEFAULT_TAKES

REPO = Path(__file__).resolve().parents[2]
WAIT = 240_000  # ms: generous for a shared machine; never asserted as a timing


def test_the_forms_default_request_on_the_shipped_model(qtbot, qsettings, shipped_daemon):
    from n2m.plugin.osclink import DaemonAddress
    from n2m.plugin.panel import Panel

    panel = Panel(qsettings, daemon=DaemonAddress("127.0.0.1", shipped_daemon.port), autostart=False)
    qtbot.addWidget(panel)
    panel.resize(340, 760)
    panel.show()
    panel.start()
    try:
        qtbot.waitUntil(lambda: panel.link.online, timeout=WAIT)
        assert panel.variations.value() == DEFAULT_TAKES == 2
        qtbot.keyClicks(panel.prompt, "lo-fi hip hop, 80 bpm, D minor, 4 bars")
        qtbot.keyClick(panel.prompt, Qt.Key.Key_Return)
        assert panel.error_text() == ""
        job = panel.jobs[-1]
        assert job.request.variations == 2 and job.request.steps is None  # Standard: the model's steps
        qtbot.waitUntil(lambda: not job.active, timeout=WAIT)
        assert job.state == "finished", job.message
        assert len(job.clips) == 2 and all(Path(p).is_file() for p in job.clips)
        qtbot.waitUntil(lambda: panel.model.rowCount() == 2, timeout=WAIT)
        listed = {panel.model.clip(i).path for i in range(2)}
        assert listed == set(job.clips)
        for i in range(2):
            clip = panel.model.clip(i)
            assert clip.bpm == pytest.approx(80.0) and clip.bars == 4
            assert clip.seconds == pytest.approx(4 * 4 * 60 / 80, abs=0.05)
    finally:
        panel.shutdown()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_screenshot_command_on_the_shipped_model(tmp_path):
    """`n2m panel --screenshot` with no --model: the daemon it starts runs bridge/models/default."""
    from PyQt6.QtGui import QImage

    env = dict(os.environ, N2M_HOME=str(tmp_path / "home"), QT_QPA_PLATFORM="offscreen")
    png = tmp_path / "panel.png"
    proc = subprocess.run(
        [sys.executable, "-m", "n2m.bridge.cli", "panel", "--screenshot", str(png),
         "--daemon", f"127.0.0.1:{_free_port()}", "--size", "340x760", "--timeout", "240"],
        env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "screenshot written" in proc.stdout and "failed" not in proc.stdout
    img = QImage(str(png))
    assert (img.width(), img.height()) == (340, 760)
    assert len(list((tmp_path / "home" / "clips").glob("*.wav"))) == 2  # the first job's two takes
    colours = {img.pixel(x, y) for x in range(0, 340, 7) for y in range(0, 760, 7)}
    assert len(colours) > 20
