"""The edit row: Extend, Replace bars and Vary of the clip the producer points at: the selected
clip (sent to the daemon by its library id) or an audio file dropped on the panel from the DAW or
the desktop (sent by its path). Each action asks one thing (bars to add, a bar range, a strength)
and hands an `EditRequest` to the panel, which queues and follows it like a generation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PyQt6.QtCore import QMimeData
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from n2m.bridge.controls import BARS_MAX
from n2m.bridge.edit import SOURCE_SUFFIXES

from .jobs import Clip, EditRequest, Job
from .widgets import ElidedLabel

KINDS = {"extend": ("Extend…", "Continue the clip by whole bars"),
         "inpaint": ("Replace bars…", "Make bars A-B of the clip anew; the rest stays as it is"),
         "vary": ("Vary…", "Takes near the clip (as many as Takes): a strength near 0 keeps it, 1 is new")}
AUDIO = "an audio file (WAV, FLAC, AIFF, MP3)"


@dataclass(frozen=True)
class EditSource:
    """What the edits act on: a library clip (its id, or its path where the id is unknown) or a file."""

    ref: int | str
    name: str
    bars: int | None = None  # its length in bars, where known
    dropped: bool = False


def dropped_audio(mime: QMimeData) -> tuple[str | None, str]:
    """(the first local audio file among the dropped URLs, or None and why not)."""
    urls = mime.urls() if mime.hasUrls() else []
    for url in urls:
        p = Path(url.toLocalFile()) if url.isLocalFile() else None
        if p is not None and p.suffix.lower() in SOURCE_SUFFIXES and p.is_file():
            return str(p), ""
    names = ", ".join(Path(u.toLocalFile() or u.toString()).name for u in urls[:3]) or "that"
    return None, f"{names}: drop {AUDIO} to extend, replace bars of or vary it"


def ask_dialog(parent: QWidget, kind: str, src: EditSource) -> int | str | float | None:
    """The one thing an edit needs, asked in a small dialog; None when the producer cancels."""
    if kind == "extend":
        value, ok = QInputDialog.getInt(parent, "Extend", f"Bars to add after {src.name}:", 2, 1, BARS_MAX)
    elif kind == "inpaint":
        last = src.bars or 1
        value, ok = QInputDialog.getText(parent, "Replace bars", f"Bars of {src.name} to make anew (A-B):",
                                         text=f"{last}-{last}")
    else:
        value, ok = QInputDialog.getDouble(parent, "Vary", f"Strength for {src.name} (near 0 keeps it, 1 is new):",
                                           0.3, 0.01, 1.0, 2)
    return value if ok else None


class EditBar(QWidget):
    """`selected()` gives the selected clip, `takes()` the form's takes, `submit(request)` queues."""

    def __init__(self, selected: Callable[[], Clip | None], takes: Callable[[], int],
                 submit: Callable[[EditRequest], Job | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.selected, self.takes, self.submit = selected, takes, submit
        self.ask: Callable[[str, EditSource], object] = lambda kind, src: ask_dialog(self, kind, src)  # tests answer
        self.dropped: EditSource | None = None
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(2)
        head = QHBoxLayout()
        self.title = QLabel("EDIT")
        self.title.setObjectName("sectionTitle")
        self.source_label = ElidedLabel("")
        self.clear_btn = QToolButton()
        self.clear_btn.setText("✕")
        self.clear_btn.setToolTip("Forget the dropped file; edit the selected clip")
        self.clear_btn.setAutoRaise(True)
        self.clear_btn.clicked.connect(self.clear_file)
        head.addWidget(self.title)
        head.addWidget(self.source_label, 1)
        head.addWidget(self.clear_btn)
        root.addLayout(head)
        row = QHBoxLayout()
        row.setSpacing(2)
        self.buttons: dict[str, QToolButton] = {}
        for kind, (text, tip) in KINDS.items():
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            b.clicked.connect(lambda _checked=False, k=kind: self.edit(k))
            row.addWidget(b)
            self.buttons[kind] = b
        row.addStretch(1)
        root.addLayout(row)
        self.update_source()

    def source(self) -> EditSource | None:
        """A dropped file, else the selected clip (by its library id where the panel knows it)."""
        if self.dropped is not None:
            return self.dropped
        clip = self.selected()
        if clip is None:
            return None
        return EditSource(clip.id if clip.id is not None else clip.path, clip.name, clip.bars)

    def update_source(self) -> None:
        src = self.source()
        what = "select a clip, or drop an audio file here" if src is None else src.name
        self.source_label.setText(f"{what} (dropped file)" if src is not None and src.dropped else what)
        self.clear_btn.setVisible(self.dropped is not None)
        for b in self.buttons.values():
            b.setEnabled(src is not None)

    def use_file(self, path: str) -> None:
        self.dropped = EditSource(str(path), Path(path).name, dropped=True)
        self.update_source()

    def clear_file(self) -> None:
        self.dropped = None
        self.update_source()

    def edit(self, kind: str) -> Job | None:
        """Ask the edit's one question and submit it; None when there is no source or no answer."""
        src = self.source()
        value = None if src is None else self.ask(kind, src)
        if src is None or value is None:
            return None
        return self.submit(EditRequest(kind, src.ref, value, src.name,
                                       variations=self.takes() if kind == "vary" else 1))

    # -- drops on the panel ------------------------------------------------------------------------
    def drop(self, mime: QMimeData) -> str:
        """Take a dropped audio file as the source; "" or why it was not taken."""
        path, why = dropped_audio(mime)
        if path is not None:
            self.use_file(path)
        return why
