"""The request form: the prompt and the controls (tempo, key, mode, meter, length, seed, takes,
quality, loop), the `GenerateRequest` they make, and the form's state as the settings store keeps it."""

from __future__ import annotations

import contextlib

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from n2m.bridge.controls import BPM_MIN, METERS, MODES, TONICS
from n2m.bridge.request import MAX_VARIATIONS

from .jobs import DEFAULT_TAKES, QUALITY_PRESETS, GenerateRequest
from .widgets import PromptEdit

AUTO = "auto"


def _right(text: str) -> QLabel:
    lbl = QLabel(text)
    lbl.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return lbl


class RequestForm(QWidget):
    """Prompt box over a grid of controls; `submitted` fires on Enter in the prompt."""

    submitted = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(6)
        self.prompt = PromptEdit()
        self.prompt.returnPressed.connect(self.submitted)
        self.prompt.setMinimumHeight(30)
        root.addWidget(self.prompt)
        self._make_controls()
        root.addLayout(self._grid())

    def _make_controls(self) -> None:
        self.bpm = QDoubleSpinBox()
        self.bpm.setRange(BPM_MIN - 1, 240.0)
        self.bpm.setDecimals(1)
        self.bpm.setSpecialValueText(AUTO)
        self.bpm.setValue(self.bpm.minimum())
        self.bpm.setSuffix(" bpm")
        self.key = QComboBox()
        self.key.addItems([AUTO, *TONICS])
        self.mode = QComboBox()
        self.mode.addItems([AUTO, *MODES])
        self.meter = QComboBox()
        self.meter.addItems([AUTO, *METERS])
        self.length = QSpinBox()
        self.length.setRange(0, 64)
        self.length.setSpecialValueText(AUTO)
        self.length_unit = QComboBox()
        self.length_unit.addItems(["bars", "sec"])
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")
        self.seed.setValue(-1)
        self.variations = QSpinBox()
        self.variations.setRange(1, MAX_VARIATIONS)
        self.variations.setValue(DEFAULT_TAKES)
        self.variations.setPrefix("× ")
        self.variations.setToolTip("How many variations (different seeds) to make")
        self.quality = QComboBox()
        for q in QUALITY_PRESETS:
            self.quality.addItem(q.label, q.steps)
        self.quality.setCurrentIndex(1)
        self.loop = QCheckBox("Loop")
        self.loop.setToolTip("A loop of whole bars whose end flows into its start (sampled periodic, "
                             "nothing stretched or crossfaded)")
        for w in (self.bpm, self.key, self.mode, self.meter, self.length, self.length_unit,
                  self.seed, self.variations, self.quality):
            w.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            w.setMinimumWidth(40)

    def _grid(self) -> QGridLayout:
        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(4)
        cells = ((0, "Tempo", self.bpm, "Meter", self.meter), (1, "Key", self.key, "Mode", self.mode),
                 (3, "Seed", self.seed, "Takes", self.variations))
        for row, left, lw, right, rw in cells:
            grid.addWidget(_right(left), row, 0)
            grid.addWidget(lw, row, 1)
            grid.addWidget(_right(right), row, 2)
            grid.addWidget(rw, row, 3)
        grid.addWidget(_right("Length"), 2, 0)
        grid.addWidget(self.length, 2, 1)
        grid.addWidget(self.length_unit, 2, 2, 1, 2)
        grid.addWidget(_right("Quality"), 4, 0)
        grid.addWidget(self.quality, 4, 1, 1, 2)
        grid.addWidget(self.loop, 4, 3)
        grid.setColumnStretch(1, 3)
        grid.setColumnStretch(3, 2)
        return grid

    # -- the request -------------------------------------------------------------------------------
    def steps(self) -> int | None:
        """The quality preset's sampling steps (None: the model's own)."""
        return self.quality.currentData()

    def request(self, extra: tuple[tuple[str, str], ...] = ()) -> GenerateRequest:
        """What the form asks for; `extra` are the settings' key=value pairs."""
        bpm = None if self.bpm.value() <= self.bpm.minimum() else float(self.bpm.value())
        length = self.length.value() or None
        unit = self.length_unit.currentText()
        return GenerateRequest(
            prompt=self.prompt.text().strip(),
            bpm=bpm,
            key=_choice(self.key),
            mode=_choice(self.mode),
            meter=_choice(self.meter),
            bars=length if length and unit == "bars" else None,
            seconds=float(length) if length and unit == "sec" else None,
            seed=None if self.seed.value() < 0 else self.seed.value(),
            variations=self.variations.value(),
            steps=self.steps(),
            extra=extra,
            loop=self.loop.isChecked(),
        )

    def follow_daw(self, on: bool, bpm: float | None, meter: str | None) -> None:
        """With sync on, take the DAW's tempo and meter and lock those controls."""
        meter_ok = bool(meter) and self.meter.findText(meter or "") >= 0
        if on and bpm:
            self.bpm.setValue(bpm)
        if on and meter_ok:
            self.meter.setCurrentText(meter)
        self.bpm.setEnabled(not (on and bpm))
        self.meter.setEnabled(not (on and meter_ok))

    # -- remembered state --------------------------------------------------------------------------
    def state(self) -> dict:
        """The controls worth keeping between sessions (not the prompt, which is in the history)."""
        return {
            "bpm": self.bpm.value(), "key": self.key.currentText(), "mode": self.mode.currentText(),
            "meter": self.meter.currentText(), "length": self.length.value(),
            "unit": self.length_unit.currentText(), "variations": self.variations.value(),
            "quality": self.quality.currentIndex(), "loop_clip": self.loop.isChecked(),
        }

    def restore(self, f: dict) -> None:
        """Set the controls from `state()`'s dict; unknown or bad values are skipped."""
        with contextlib.suppress(TypeError, ValueError):
            if "bpm" in f:
                self.bpm.setValue(float(f["bpm"]))
            for combo, k in ((self.key, "key"), (self.mode, "mode"), (self.meter, "meter"),
                             (self.length_unit, "unit")):
                if k in f and combo.findText(str(f[k])) >= 0:
                    combo.setCurrentText(str(f[k]))
            if "length" in f:
                self.length.setValue(int(f["length"]))
            if "variations" in f:
                self.variations.setValue(int(f["variations"]))
            if "quality" in f and 0 <= int(f["quality"]) < self.quality.count():
                self.quality.setCurrentIndex(int(f["quality"]))
            if "loop_clip" in f:
                self.loop.setChecked(bool(f["loop_clip"]))


def _choice(combo: QComboBox) -> str | None:
    return None if combo.currentText() == AUTO else combo.currentText()
