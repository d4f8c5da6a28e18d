"""Small widgets of the panel: the prompt box with history, a job row, the status dot, settings."""

from __future__ import annotations

from PyQt6.QtCore import QStringListModel, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFontMetrics, QKeyEvent, QPainter, QPalette
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from .jobs import Job, format_eta
from .osclink import DaemonAddress
from .settings import FORMATS, SAMPLERATES, PanelSettings


class PromptEdit(QLineEdit):
    """One-line prompt: Enter submits (the panel connects returnPressed), Up/Down walk the history,
    and a completer offers past prompts that contain what is typed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._history: list[str] = []
        self._pos = -1
        self._draft = ""
        self._model = QStringListModel(self)
        comp = QCompleter(self._model, self)
        comp.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        comp.setFilterMode(Qt.MatchFlag.MatchContains)
        comp.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        comp.setMaxVisibleItems(8)
        self.setCompleter(comp)
        self.setClearButtonEnabled(True)
        self.setPlaceholderText("Describe the music…  (Enter to generate)")

    def set_history(self, items: list[str]) -> None:
        self._history = list(items)
        self._model.setStringList(self._history)
        self._pos = -1

    def history(self) -> list[str]:
        return list(self._history)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        popup = self.completer().popup()
        if popup is not None and popup.isVisible():
            return super().keyPressEvent(event)
        if event.key() == Qt.Key.Key_Up and self._history:
            if self._pos == -1:
                self._draft = self.text()
            self._pos = min(self._pos + 1, len(self._history) - 1)
            self.setText(self._history[self._pos])
            return
        if event.key() == Qt.Key.Key_Down and self._pos >= 0:
            self._pos -= 1
            self.setText(self._draft if self._pos < 0 else self._history[self._pos])
            return
        super().keyPressEvent(event)


class StatusDot(QWidget):
    """A small coloured dot: green online, amber starting/waiting, grey offline."""

    COLOURS = {"online": "#3cb371", "starting": "#e0a030", "offline": "#8a8f96", "error": "#d9534f"}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = "offline"
        self.setFixedSize(10, 10)

    def set_state(self, state: str) -> None:
        self.state = state
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: ANN001
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(self.COLOURS.get(self.state, "#8a8f96")))
        p.drawEllipse(1, 1, 8, 8)


def _small(label: QLabel) -> QLabel:
    f = label.font()
    f.setPointSizeF(max(6.5, f.pointSizeF() * 0.88))
    label.setFont(f)
    return label


class ElidedLabel(QLabel):
    """A label that elides its text to its width instead of widening the panel."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = text
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(20)
        super().setText(text)

    def setText(self, text: str) -> None:  # noqa: N802
        self._full = text
        self._elide()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event) -> None:  # noqa: ANN001
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        fm = QFontMetrics(self.font())
        super().setText(fm.elidedText(self._full, Qt.TextElideMode.ElideRight, max(10, self.width())))
        self.setToolTip(self._full if fm.horizontalAdvance(self._full) > self.width() else "")


class JobRow(QFrame):
    """One job in the queue: prompt (or edit), stage and step, progress bar with ETA, cancel."""

    cancel_clicked = pyqtSignal(object)  # the Job

    def __init__(self, job: Job, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self.setObjectName("jobRow")
        self.setFrameShape(QFrame.Shape.NoFrame)
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 3, 4, 3)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(1)
        self.title = ElidedLabel(job.request.title or "(request from the DAW)")
        self.detail = _small(ElidedLabel(""))
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(5)
        self.cancel = QToolButton()
        self.cancel.setText("✕")
        self.cancel.setToolTip("Cancel this job (Esc cancels the newest)")
        self.cancel.setAutoRaise(True)
        self.cancel.clicked.connect(lambda: self.cancel_clicked.emit(self.job))
        grid.addWidget(self.title, 0, 0)
        grid.addWidget(self.cancel, 0, 1, 2, 1)
        grid.addWidget(self.bar, 1, 0)
        grid.addWidget(self.detail, 2, 0, 1, 2)
        grid.setColumnStretch(0, 1)

    def refresh(self, eta_seconds: float | None) -> None:
        j = self.job
        self.bar.setValue(int(j.fraction * 1000))
        pal = self.palette()
        colour = pal.color(QPalette.ColorRole.WindowText)
        if j.state == "sending":
            text = "sending to the daemon…" if not j.message else j.message
        elif j.state == "queued":
            text = f"queued as job {j.id}" + (f" · {j.message}" if j.message else "")
        elif j.state == "running":
            pct = f"{j.fraction * 100:.0f}%"
            stage = "starting" if j.stage in {"", "queued"} else j.stage
            text = " · ".join(x for x in (stage, pct, format_eta(eta_seconds), j.message) if x)
        elif j.state == "finished":
            n = len(j.clips)
            text = f"done · {n} clip{'s' if n != 1 else ''}"
        elif j.state == "cancelled":
            text = "cancelled"
        else:
            text = f"failed: {j.message or 'unknown error'}"
            colour = QColor("#d9534f")
        self.detail.setText(text)
        self.detail.setStyleSheet(f"color: {colour.name()};")
        self.cancel.setVisible(j.active)
        self.bar.setVisible(j.state in {"queued", "running", "finished"})

    def sizeHint(self):  # noqa: ANN201
        """Height from the visible-to-be parts, even before the row is first shown."""
        m = self.layout().contentsMargins()
        h = self.title.sizeHint().height() + self.detail.sizeHint().height() + 2
        if not self.bar.isHidden():
            h += self.bar.height() + 1
        hint = super().sizeHint()
        hint.setHeight(h + m.top() + m.bottom())
        return hint


class SettingsDialog(QDialog):
    """Daemon address, output folder, sample rate, format, loudness target, daemon start-up."""

    def __init__(self, settings: PanelSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("n2m settings")
        form = QFormLayout(self)
        self.daemon = QLineEdit(settings.daemon)
        self.daemon.setPlaceholderText("127.0.0.1:9797")
        self.output = QLineEdit(settings.output_dir)
        self.output.setPlaceholderText("the daemon's default")
        browse = QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(self._browse)
        out_row = QHBoxLayout()
        out_row.addWidget(self.output, 1)
        out_row.addWidget(browse)
        self.samplerate = QComboBox()
        for sr in SAMPLERATES:
            self.samplerate.addItem("follow the DAW" if sr == 0 else f"{sr / 1000:g} kHz", sr)
        self.samplerate.setCurrentIndex(max(0, self.samplerate.findData(settings.samplerate)))
        self.format = QComboBox()
        for f, label in zip(FORMATS, ("WAV 24-bit", "WAV 32-bit float", "FLAC"), strict=True):
            self.format.addItem(label, f)
        self.format.setCurrentIndex(max(0, self.format.findData(settings.format)))
        self.loudness = QDoubleSpinBox()
        self.loudness.setRange(-36.0, -6.0)
        self.loudness.setDecimals(1)
        self.loudness.setSuffix(" LUFS")
        self.loudness.setValue(settings.loudness)
        self.autostart = QCheckBox("start a daemon when none answers")
        self.autostart.setChecked(settings.autostart)
        self.model = QLineEdit(settings.model)
        self.model.setPlaceholderText("the daemon's default model")
        self.error = QLabel("")
        self.error.setStyleSheet("color: #d9534f;")
        self.error.setWordWrap(True)
        form.addRow("Daemon", self.daemon)
        form.addRow("Output folder", out_row)
        form.addRow("Sample rate", self.samplerate)
        form.addRow("Format", self.format)
        form.addRow("Loudness", self.loudness)
        form.addRow("", self.autostart)
        form.addRow("Model", self.model)
        form.addRow(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._base = settings

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Output folder", self.output.text())
        if d:
            self.output.setText(d)

    def result_settings(self) -> PanelSettings:
        s = PanelSettings(**vars(self._base))
        s.daemon = self.daemon.text().strip() or s.daemon
        s.output_dir = self.output.text().strip()
        s.samplerate = int(self.samplerate.currentData())
        s.format = str(self.format.currentData())
        s.loudness = float(self.loudness.value())
        s.autostart = self.autostart.isChecked()
        s.model = self.model.text().strip()
        return s

    def _accept(self) -> None:
        try:
            DaemonAddress.parse(self.daemon.text())
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        self.accept()
