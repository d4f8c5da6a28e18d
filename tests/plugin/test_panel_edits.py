"""The panel's edits against a real `n2m serve` running the shipped model, over real OSC on
loopback, in a real offscreen Qt widget: Extend on a clip selected in the list (sent by its
library id), and an audio file dropped on the panel becoming the source of Vary (sent by its
path). The edit's dialog is answered by the test (`panel.edits.ask`); everything else is real."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from pedalboard.io import AudioFile
from PyQt6.QtCore import QMimeData, QPointF, Qt, QUrl
from PyQt6.QtGui import QDragEnterEvent, QDropEvent
from PyQt6.QtWidgets import QApplication

from n2m.plugin.editbar import EditSource
from n2m.plugin.osclink import DaemonAddress

WAIT = 240_000  # ms: generous for a shared machine; never asserted as a timing


@pytest.fixture
def panel(qtbot, qsettings, shipped_daemon):
    from n2m.plugin.panel import Panel

    p = Panel(qsettings, daemon=DaemonAddress("127.0.0.1", shipped_daemon.port), autostart=False)
    qtbot.addWidget(p)
    p.resize(340, 800)
    p.show()
    p.start()
    qtbot.waitUntil(lambda: p.link.online, timeout=WAIT)
    p.variations.setValue(1)  # one take per Generate, and per Vary
    yield p
    p.shutdown()


def _frames(path: str | Path) -> tuple[np.ndarray, int]:
    with AudioFile(str(path)) as f:
        return f.read(f.frames), int(f.samplerate)


def _library_edit(library: Path, path: str) -> dict | None:
    with sqlite3.connect(library) as db:  # the daemon's own library, read as a second client
        row = db.execute("SELECT edit FROM clips WHERE path=?", (path,)).fetchone()
    return None if row is None or row[0] is None else json.loads(row[0])


def _drop(panel, path: Path) -> bool:
    """A file URL dragged in from outside the application and dropped on the panel; accepted?"""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    pos = QPointF(panel.width() / 2, panel.height() / 2)
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, buttons, mods)
    QApplication.sendEvent(panel, enter)
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, buttons, mods)
    QApplication.sendEvent(panel, drop)
    return enter.isAccepted() and drop.isAccepted()


def test_extend_a_selected_clip_by_its_library_id(qtbot, panel, shipped_daemon):
    """Inputs: "lo-fi hip hop, 80 bpm, D minor, 2 bars" typed and generated, the clip selected,
    Extend pressed and its dialog answered with 2 bars."""
    qtbot.keyClicks(panel.prompt, "lo-fi hip hop, 80 bpm, D minor, 2 bars")
    qtbot.keyClick(panel.prompt, Qt.Key.Key_Return)
    gen = panel.jobs[-1]
    qtbot.waitUntil(lambda: not gen.active, timeout=WAIT)
    assert gen.state == "finished", gen.message
    source = panel.model.clip(0)
    assert source.id is not None and source.bars == 2  # the id came with /n2m/clip/ready
    panel.view.setCurrentIndex(panel.model.index(0))
    assert panel.edits.source_label.full_text() == source.name
    asked: list = []
    panel.edits.ask = lambda kind, src: asked.append((kind, src)) or 2
    qtbot.mouseClick(panel.edits.buttons["extend"], Qt.MouseButton.LeftButton)
    job = panel.jobs[-1]
    assert job is not gen and asked == [("extend", EditSource(source.id, source.name, 2))]
    assert job.request.to_osc_args()[:2] == [source.id, "bars=2"]  # sent by library id
    assert panel._rows[id(job)].title.full_text() == f"Extend +2 bars · {source.name}"  # in the queue view
    seen: list[str] = []
    panel.job_changed.connect(lambda j: seen.append(j.stage) if j is job else None)
    qtbot.waitUntil(lambda: not job.active, timeout=WAIT)
    assert job.state == "finished", job.message
    assert "generator" in seen and panel._rows[id(job)].detail.full_text() == "done · 1 clip"
    result = panel.model.clip(0)  # listed on top, selected, with its id and the edit
    assert result.path == job.clips[0] and panel.selected_clip() is result
    assert result.edit == "extend" and result.id not in (None, source.id) and result.bars == 4
    assert "extended" in result.meta_line()
    y, sr = _frames(result.path)
    x, sr0 = _frames(source.path)
    assert sr == sr0 and abs(y.shape[1] - (x.shape[1] + 2 * 3.0 * sr)) <= 0.005 * sr  # 2 bars at 80 bpm
    assert np.abs(y[:, : x.shape[1]] - x).max() <= 2e-3
    edit = _library_edit(shipped_daemon.library, result.path)
    assert edit == {"kind": "extend", "bars": 2, "source": source.path, "source_id": source.id}
    assert panel.edits.source_label.full_text() == result.name  # the next edit acts on the result


def test_a_dropped_audio_file_becomes_the_source_of_vary(qtbot, panel, shipped_daemon, tmp_path):
    """Inputs: a text file's URL dropped (refused with a line, nothing taken), then the URL of a
    stereo 44.1 kHz FLAC dropped from outside the application (taken), Vary pressed and its dialog
    answered with strength 0.3; then the result clicked in the list (the source again)."""
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    assert not _drop(panel, text)
    assert "notes.txt: drop an audio file" in panel.error_text() and panel.edits.source() is None
    assert not any(b.isEnabled() for b in panel.edits.buttons.values())

    t = np.arange(int(8.0 * 44100)) / 44100
    beat = (np.sin(2 * np.pi * 110 * t) * (np.mod(t, 0.5) < 0.1)).astype(np.float32)
    flac = tmp_path / "from the daw" / "loop.flac"
    flac.parent.mkdir()
    with AudioFile(str(flac), "w", 44100.0, 2) as f:
        f.write(np.stack([0.5 * beat, 0.3 * beat]))
    before = hashlib.sha256(flac.read_bytes()).hexdigest()
    assert _drop(panel, flac)
    assert panel.error_text() == ""
    assert panel.edits.source() == EditSource(str(flac), "loop.flac", dropped=True)
    assert panel.edits.source_label.full_text() == "loop.flac (dropped file)"
    assert all(b.isEnabled() for b in panel.edits.buttons.values())

    panel.edits.ask = lambda kind, src: 0.3
    qtbot.mouseClick(panel.edits.buttons["vary"], Qt.MouseButton.LeftButton)
    job = panel.jobs[-1]
    assert job.request.to_osc_args()[:2] == [str(flac), "strength=0.3"]  # sent by path
    qtbot.waitUntil(lambda: not job.active, timeout=WAIT)
    assert job.state == "finished", job.message
    result = panel.model.clip(0)
    assert result.path == job.clips[0] and result.edit == "vary" and Path(result.path).suffix == ".flac"
    y, sr = _frames(result.path)
    assert sr == 44100 and y.shape == (2, len(t))
    assert _library_edit(shipped_daemon.library, result.path)["source"] == str(flac)
    assert hashlib.sha256(flac.read_bytes()).hexdigest() == before  # the dropped file is only read
    assert panel.edits.source().dropped  # a result arriving does not take the dropped file's place

    rect = panel.view.visualRect(panel.model.index(0))
    qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert panel.edits.source() == EditSource(result.id, result.name, result.bars)
