"""The results list: a Qt model of clips, waveform thumbnails read off the GUI thread, a painter
for each row, and the drag that hands a clip to a DAW track.

Every drag gets a fresh, read-only copy of the clip (in a `drags/` folder beside it), so what the
DAW imports can never change under it, even if the clip is later deleted from the panel.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import stat
import time
from pathlib import Path

from PyQt6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPointF,
    QRectF,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    QUrl,
    pyqtSignal,
)
from PyQt6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPainterPath, QPalette, QPen
from PyQt6.QtWidgets import QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from .jobs import Clip
from .peaks import AudioReadError, Peaks, peaks_of_file

ClipRole = Qt.ItemDataRole.UserRole + 1
PEAK_COLUMNS = 480


class DragError(OSError):
    """The clip could not be copied for a drag; the message names the file and the cause."""


def make_drag_copy(path: str | Path, counter: itertools.count | None = None) -> Path:
    """A fresh, read-only copy of the clip in `<clip folder>/drags/`; never overwrites anything."""
    src = Path(path)
    if not src.is_file():
        raise DragError(f"{src}: the clip file is gone")
    folder = src.parent / "drags"
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise DragError(f"cannot create {folder}: {exc.strerror}") from exc
    stamp = time.strftime("%Y%m%d-%H%M%S")
    n = next(counter) if counter is not None else 0
    for attempt in range(1000):
        dst = folder / f"{src.stem}.drag-{stamp}-{n}-{attempt}{src.suffix}"
        try:
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        except OSError as exc:
            raise DragError(f"cannot write {dst}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
                shutil.copyfileobj(inp, out)
            os.chmod(dst, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        except OSError as exc:
            dst.unlink(missing_ok=True)
            raise DragError(f"cannot copy {src.name} for the drag: {exc.strerror}") from exc
        return dst
    raise DragError(f"no free name for a drag copy of {src.name} in {folder}")


# -- waveform loading off the GUI thread ----------------------------------------------------------
class _PeakSignals(QObject):
    done = pyqtSignal(str, object, str)  # path, Peaks | None, error


class _PeakTask(QRunnable):
    def __init__(self, path: str, signals: _PeakSignals) -> None:
        super().__init__()
        self.path, self.signals = path, signals

    def run(self) -> None:
        try:
            peaks = peaks_of_file(self.path, PEAK_COLUMNS)
        except (OSError, AudioReadError) as exc:
            self.signals.done.emit(self.path, None, str(exc))
            return
        self.signals.done.emit(self.path, peaks, "")


class WaveformCache(QObject):
    """Peaks per file path, computed in a thread pool; `ready` fires when one arrives."""

    ready = pyqtSignal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = _PeakSignals(self)
        self._signals.done.connect(self._done)
        self._peaks: dict[str, Peaks] = {}
        self._errors: dict[str, str] = {}
        self._pending: set[str] = set()

    def get(self, path: str) -> Peaks | None:
        if path in self._peaks:
            return self._peaks[path]
        if path not in self._pending and path not in self._errors:
            self._pending.add(path)
            self._pool.start(_PeakTask(path, self._signals))
        return None

    def error(self, path: str) -> str:
        return self._errors.get(path, "")

    def pending(self, path: str) -> bool:
        return path in self._pending

    def wait(self, ms: int = 5000) -> bool:
        return self._pool.waitForDone(ms)

    def close(self, ms: int = 3000) -> None:
        """Drop queued reads, wait for the running one, and stop delivering results."""
        self._pool.clear()
        self._pool.waitForDone(ms)
        with contextlib.suppress(TypeError):  # already closed
            self._signals.done.disconnect(self._done)

    def _done(self, path: str, peaks: object, error: str) -> None:
        self._pending.discard(path)
        if isinstance(peaks, Peaks):
            self._peaks[path] = peaks
        else:
            self._errors[path] = error
        self.ready.emit(path)


# -- the model --------------------------------------------------------------------------------
class ClipModel(QAbstractListModel):
    """Clips, newest first. Drag yields a text/uri-list of fresh read-only copies."""

    changed = pyqtSignal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._clips: list[Clip] = []
        self._drag_counter = itertools.count()
        self.last_drag_error = ""

    # list API
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._clips)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self._clips):
            return None
        clip = self._clips[index.row()]
        if role == ClipRole:
            return clip
        if role == Qt.ItemDataRole.DisplayRole:
            return clip.prompt or clip.name
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{clip.prompt}\n{clip.meta_line()}\n{clip.path}"
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else base

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list", "text/plain"]

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def mimeData(self, indexes: list[QModelIndex]) -> QMimeData | None:
        """A fresh immutable copy of each dragged clip, as file URLs (what DAWs accept)."""
        self.last_drag_error = ""
        urls: list[QUrl] = []
        for idx in indexes:
            clip = self.clip(idx.row())
            if clip is None:
                continue
            try:
                urls.append(QUrl.fromLocalFile(str(make_drag_copy(clip.path, self._drag_counter))))
            except DragError as exc:
                self.last_drag_error = str(exc)
        if not urls:
            return None
        mime = QMimeData()
        mime.setUrls(urls)
        mime.setText("\n".join(u.toLocalFile() for u in urls))
        return mime

    # clip API
    def clips(self) -> list[Clip]:
        return list(self._clips)

    def clip(self, row: int) -> Clip | None:
        return self._clips[row] if 0 <= row < len(self._clips) else None

    def row_of(self, path: str) -> int:
        for i, c in enumerate(self._clips):
            if c.path == path:
                return i
        return -1

    def add(self, clip: Clip) -> int:
        """Insert in order, newest first (or update the row with the same path); returns the row."""
        row = self.row_of(clip.path)
        if row >= 0:
            self._clips[row] = clip
            self.dataChanged.emit(self.index(row), self.index(row))
        else:
            row = next((i for i, c in enumerate(self._clips) if c.created <= clip.created), len(self._clips))
            self.beginInsertRows(QModelIndex(), row, row)
            self._clips.insert(row, clip)
            self.endInsertRows()
        self.changed.emit()
        return row

    def remove(self, row: int) -> Clip | None:
        if not 0 <= row < len(self._clips):
            return None
        self.beginRemoveRows(QModelIndex(), row, row)
        clip = self._clips.pop(row)
        self.endRemoveRows()
        self.changed.emit()
        return clip

    def touch(self, row: int) -> None:
        if 0 <= row < len(self._clips):
            self.dataChanged.emit(self.index(row), self.index(row))
            self.changed.emit()

    def touch_path(self, path: str) -> None:
        row = self.row_of(path)
        if row >= 0:
            self.dataChanged.emit(self.index(row), self.index(row))


# -- the row painter ------------------------------------------------------------------------------
class ClipDelegate(QStyledItemDelegate):
    """Paints one clip: waveform thumbnail (with the play position), prompt, and a meta line."""

    ROW_HEIGHT = 74

    def __init__(self, cache: WaveformCache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache = cache
        self.playing_path = ""
        self.play_fraction = 0.0

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(200, self.ROW_HEIGHT)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        clip = index.data(ClipRole)
        if not isinstance(clip, Clip):
            return super().paint(painter, option, index)
        pal: QPalette = option.palette
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(option.rect).adjusted(4, 3, -4, -3)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        alt = pal.color(QPalette.ColorRole.AlternateBase)
        card = _mix(alt, pal.color(QPalette.ColorRole.Highlight), 0.16) if selected else alt
        path = QPainterPath()
        path.addRoundedRect(r, 6, 6)
        painter.fillPath(path, card)
        if selected:
            painter.setPen(QPen(pal.color(QPalette.ColorRole.Highlight), 1.2))
            painter.drawPath(path)

        text_col = pal.color(QPalette.ColorRole.Text)
        dim = _mix(text_col, card, 0.55)
        font = QFont(option.font)
        fm = QFontMetrics(font)
        pad = 8.0
        # line 1: favourite star + prompt
        x = r.left() + pad
        y1 = r.top() + 4
        if clip.favourite:
            painter.setPen(QColor("#f2b233"))
            painter.drawText(QRectF(x, y1, 14, fm.height()), Qt.AlignmentFlag.AlignVCenter, "★")
            x += 15
        painter.setPen(text_col)
        bold = QFont(font)
        bold.setWeight(QFont.Weight.DemiBold)
        painter.setFont(bold)
        title = QFontMetrics(bold).elidedText(clip.prompt or clip.name, Qt.TextElideMode.ElideRight,
                                              int(r.right() - pad - x))
        painter.drawText(QRectF(x, y1, r.right() - pad - x, fm.height()), Qt.AlignmentFlag.AlignVCenter, title)
        # waveform
        small = QFont(font)
        small.setPointSizeF(max(6.5, font.pointSizeF() * 0.85))
        sfm = QFontMetrics(small)
        wave_top = y1 + fm.height() + 3
        wave_bottom = r.bottom() - sfm.height() - 5
        wave = QRectF(r.left() + pad, wave_top, r.width() - 2 * pad, max(8.0, wave_bottom - wave_top))
        accent = pal.color(QPalette.ColorRole.Highlight)
        self._paint_wave(painter, wave, clip, accent, dim, small)
        # line 3: meta
        painter.setFont(small)
        painter.setPen(dim)
        meta = sfm.elidedText(clip.meta_line(), Qt.TextElideMode.ElideRight, int(wave.width()))
        painter.drawText(QRectF(wave.left(), wave.bottom() + 2, wave.width(), sfm.height()),
                         Qt.AlignmentFlag.AlignVCenter, meta)
        painter.restore()

    def _paint_wave(self, p: QPainter, rect: QRectF, clip: Clip, accent: QColor, dim: QColor,
                    font: QFont) -> None:
        peaks = self.cache.get(clip.path)
        mid = rect.center().y()
        if peaks is None:
            p.setPen(QPen(dim, 1, Qt.PenStyle.DotLine))
            p.drawLine(QPointF(rect.left(), mid), QPointF(rect.right(), mid))
            msg = self.cache.error(clip.path)
            if msg:
                p.setFont(font)
                p.setPen(dim)
                p.drawText(rect, Qt.AlignmentFlag.AlignCenter, QFontMetrics(font).elidedText(
                    msg, Qt.TextElideMode.ElideMiddle, int(rect.width())))
            return
        n = len(peaks.low)
        cols = max(1, int(rect.width()))
        half = rect.height() / 2.0
        playing = clip.path == self.playing_path
        cut = rect.left() + rect.width() * self.play_fraction if playing else rect.left()
        played_col = accent
        rest_col = _mix(accent, dim, 0.45) if playing else accent
        for c in range(cols):
            a = int(c * n / cols)
            b = max(a + 1, int((c + 1) * n / cols))
            lo, hi = float(peaks.low[a:b].min()), float(peaks.high[a:b].max())
            xx = rect.left() + c + 0.5
            p.setPen(QPen(played_col if xx <= cut else rest_col, 1.0))
            p.drawLine(QPointF(xx, mid - hi * half), QPointF(xx, mid - min(lo, hi - 0.02) * half))
        if playing:
            p.setPen(QPen(_mix(accent, QColor("white"), 0.3), 1.5))
            p.drawLine(QPointF(cut, rect.top()), QPointF(cut, rect.bottom()))


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    """a*(1-t) + b*t."""
    return QColor(
        int(a.red() * (1 - t) + b.red() * t),
        int(a.green() * (1 - t) + b.green() * t),
        int(a.blue() * (1 - t) + b.blue() * t),
    )


class ClipView(QListView):
    """The list widget: drag out, Space to play (the panel connects `play_requested`)."""

    play_requested = pyqtSignal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setDragEnabled(True)
        self.setDragDropMode(QListView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.setUniformItemSizes(True)
        self.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.setMouseTracking(True)

    def keyPressEvent(self, event) -> None:  # noqa: ANN001
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self.play_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)
