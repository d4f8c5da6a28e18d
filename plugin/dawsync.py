"""DAW sync: the tempo, meter and sample rate the DAW reported (through the daemon's
`/n2m/set/*` replies and its status), and the "Sync to DAW" row that shows them and makes the
form follow them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from PyQt6.QtWidgets import QCheckBox, QHBoxLayout, QWidget

from n2m.bridge import protocol as P

from .widgets import ElidedLabel

log = logging.getLogger(__name__)


def _number(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


@dataclass
class DawState:
    """What the DAW last reported (through the daemon): tempo, meter, sample rate."""

    bpm: float | None = None
    meter: str | None = None
    samplerate: int | None = None
    updated: float = 0.0

    def text(self) -> str:
        parts = []
        if self.bpm:
            parts.append(f"{self.bpm:g} bpm")
        if self.meter:
            parts.append(self.meter)
        if not parts:
            return "not reported"
        if self.samplerate:
            parts.append(f"{self.samplerate / 1000:g} kHz")
        return " · ".join(parts)

    @property
    def known(self) -> bool:
        return self.bpm is not None or self.meter is not None

    def update(self, bpm: object = None, meter: object = None, samplerate: object = None) -> bool:
        """Take the values that are given and valid (a tempo of 0 clears it); True if anything
        changed."""
        old = (self.bpm, self.meter, self.samplerate)
        b, sr = _number(bpm), _number(samplerate)
        if b is not None:
            self.bpm = b if b > 0 else None
        if isinstance(meter, str) and meter:
            self.meter = meter
        elif isinstance(meter, list | tuple) and len(meter) == 2 and all(_number(m) for m in meter):
            self.meter = f"{int(meter[0])}/{int(meter[1])}"
        if sr is not None and sr > 0:
            self.samplerate = int(sr)
        if (self.bpm, self.meter, self.samplerate) == old:
            return False
        self.updated = time.monotonic()
        return True

    def update_from_message(self, address: str, args: list) -> bool:
        """A `/n2m/set/tempo|meter|samplerate` reply; True if it changed anything."""
        if not args or not all(_number(a) is not None for a in args[:2]):
            log.warning("%s: arguments %r are not numbers; ignored", address, args[:2])
            return False
        if address == P.SET_TEMPO:
            return self.update(bpm=args[0])
        if address == P.SET_METER:
            if len(args) < 2:
                log.warning("%s: needs numerator and denominator, got %r; ignored", address, args)
                return False
            return self.update(meter=args[:2])
        return self.update(samplerate=args[0])


class DawSyncBar(QWidget):
    """"Sync to DAW" and what the DAW reported. Sync turns itself on the first time the DAW
    reports, unless the producer has touched it; `follow(on, bpm, meter)` applies it to the form."""

    def __init__(self, follow: Callable[[bool, float | None, str | None], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = DawState()
        self._follow = follow
        self._touched = False
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.sync_box = QCheckBox("Sync to DAW")
        self.sync_box.setToolTip("Use the tempo and meter the DAW reported (over OSC to the daemon)")
        self.sync_box.clicked.connect(self._touch)
        self.sync_box.toggled.connect(lambda _on: self.apply())
        self.sync_label = ElidedLabel("DAW: not reported")
        self.sync_label.setObjectName("syncLabel")
        row.addWidget(self.sync_box)
        row.addWidget(self.sync_label, 1)

    def on_message(self, address: str, args: list) -> None:
        if self.state.update_from_message(address, args):
            self._show()

    def on_status(self, status: dict) -> None:
        """The daemon's status carries the song's tempo, meter and sample rate too."""
        daw = status.get("daw") if isinstance(status.get("daw"), dict) else status
        tempo = daw.get("tempo", daw.get("bpm"))
        if tempo is None and "tempo" in daw:
            tempo = 0  # the DAW cleared it
        if self.state.update(tempo, daw.get("meter"), daw.get("samplerate")):
            self._show()

    def apply(self) -> None:
        self._follow(self.sync_box.isChecked(), self.state.bpm, self.state.meter)

    def _touch(self) -> None:
        self._touched = True

    def _show(self) -> None:
        self.sync_label.setText(f"DAW: {self.state.text()}")
        if self.state.known and not self.sync_box.isChecked() and not self._touched:
            self.sync_box.setChecked(True)  # follow the DAW once it reports, unless turned off
        self.apply()
