"""The queue view: one row per active job and the last few finished ones, each with its stage,
progress, time left and a cancel button; as tall as its rows up to a limit, then it scrolls."""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from .jobs import Job, seconds_left
from .widgets import JobRow

KEEP_FINISHED = 3  # finished jobs still shown
MAX_HEIGHT = 190  # px; more jobs scroll


class QueueView(QWidget):
    """Rows for `show(jobs)`; `cancel_clicked(job)` when a row's ✕ is pressed."""

    cancel_clicked = pyqtSignal(object)  # Job

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: dict[int, JobRow] = {}  # id(job) -> its row
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(6)
        self.title = QLabel("QUEUE")
        self.title.setObjectName("sectionTitle")
        root.addWidget(self.title)
        self.box = QWidget()
        self.box_layout = QVBoxLayout(self.box)
        self.box_layout.setContentsMargins(0, 0, 0, 0)
        self.box_layout.setSpacing(2)
        self.empty = QLabel("No jobs. Type a prompt and press Enter.")
        self.empty.setObjectName("hint")
        self.box_layout.addWidget(self.empty)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.box)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        root.addWidget(self.scroll)

    def show_jobs(self, jobs: list[Job]) -> None:
        """Rows for the active jobs and the last finished ones, oldest first."""
        active = [j for j in jobs if j.active]
        shown = [j for j in jobs if not j.active][-KEEP_FINISHED:] + active
        keep = {id(j) for j in shown}
        for key in list(self.rows):
            if key not in keep:
                row = self.rows.pop(key)
                self.box_layout.removeWidget(row)
                row.deleteLater()
        for i, j in enumerate(shown):
            row = self.rows.get(id(j))
            if row is None:
                row = JobRow(j)
                row.cancel_clicked.connect(self.cancel_clicked)
                self.rows[id(j)] = row
            self.box_layout.insertWidget(i, row)
            row.refresh(seconds_left(j))
        self.empty.setVisible(not shown)
        self._fit()
        n = len(active)
        self.title.setText(f"QUEUE · {n} active" if n else "QUEUE")

    def refresh(self, job: Job) -> bool:
        """Update the job's row; False if it has none (then `show_jobs` is due)."""
        row = self.rows.get(id(job))
        if row is None:
            return False
        row.refresh(seconds_left(job))
        self._fit()
        return True

    def tick(self) -> None:
        """Time left moves on for running jobs."""
        for row in self.rows.values():
            if row.job.state == "running":
                row.refresh(seconds_left(row.job))

    def _fit(self) -> None:
        rows = list(self.rows.values())
        if rows:
            h = sum(r.sizeHint().height() for r in rows) + self.box_layout.spacing() * (len(rows) - 1)
        else:
            h = self.empty.sizeHint().height()
        self.scroll.setFixedHeight(min(h + 2, MAX_HEIGHT))
