""""Send to DAW": hands a clip to the DAW adapters in `n2m.bridge.daw`, off the GUI thread.

The adapters (REAPER, Ardour, Bitwig, Live) live in the bridge (`ADAPTERS`, `send_clip`); this
module only runs one in the thread pool and reports the result to the panel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PyQt6.QtCore import QObject, pyqtSignal

from n2m.bridge import daw as adapters


def names() -> list[str]:
    return sorted(adapters.ADAPTERS)


def available() -> bool:
    return bool(adapters.ADAPTERS)


def send(path: str, target: str = "") -> str:
    """Place the clip; returns a one-line result, raises with the reason."""
    return adapters.send_clip(path, target)


class _Signals(QObject):
    done = pyqtSignal(bool, str)


class _Task:
    def __init__(self, path: str, target: str, signals: _Signals) -> None:
        self.path, self.target, self.signals = path, target, signals

    def run(self) -> None:
        try:
            msg = send(self.path, self.target)
        except Exception as exc:  # an adapter's failure must reach the panel, not kill a thread
            self.signals.done.emit(False, str(exc) or type(exc).__name__)
            return
        self.signals.done.emit(True, msg)


def send_async(parent: QObject, path: str, target: str, on_done: Callable[[bool, str], None]) -> None:
    """Run `send` on a worker thread; `on_done(ok, message)` is called on the GUI thread."""
    signals = _Signals(parent)
    signals.done.connect(on_done)
    signals.done.connect(signals.deleteLater)
    threading.Thread(target=_Task(path, target, signals).run, name="n2m-send-to-daw", daemon=True).start()
