""""Send to DAW": hands a clip to the DAW adapters in `n2m.bridge.daw`, off the GUI thread.

The adapters (REAPER, Ardour, Bitwig, Live) live in the bridge; this module only finds them and
calls one. It accepts either a module-level `send_clip(path, daw=None)` / `place_clip(...)`, or a
registry `ADAPTERS` (name -> object with `send(path)`, `place(path)` or `insert(path)`). When the
bridge has none, `available()` is False and the button stays disabled.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

from PyQt6.QtCore import QObject, QRunnable, QThreadPool, pyqtSignal

_FUNCS = ("send_clip", "place_clip", "send")
_METHODS = ("send", "place", "insert", "insert_clip", "place_clip")


def _module() -> ModuleType | None:
    try:
        return importlib.import_module("n2m.bridge.daw")
    except ImportError:
        return None


def names() -> list[str]:
    mod = _module()
    reg = getattr(mod, "ADAPTERS", None) if mod else None
    return sorted(reg) if isinstance(reg, dict) else []


def available() -> bool:
    mod = _module()
    if mod is None:
        return False
    return any(callable(getattr(mod, f, None)) for f in _FUNCS) or bool(names())


def send(path: str, target: str = "") -> str:
    """Place the clip; returns a one-line result, raises RuntimeError with the reason."""
    mod = _module()
    if mod is None:
        raise RuntimeError("the DAW adapters (n2m.bridge.daw) are not installed")
    for f in _FUNCS:
        fn = getattr(mod, f, None)
        if callable(fn):
            result = fn(path, target) if target else fn(path)
            return str(result or "sent")
    reg = getattr(mod, "ADAPTERS", None)
    if isinstance(reg, dict) and reg:
        name = target if target in reg else next(iter(sorted(reg)))
        adapter = reg[name]
        for m in _METHODS:
            meth = getattr(adapter, m, None)
            if callable(meth):
                return str(meth(path) or f"sent to {name}")
        raise RuntimeError(f"the {name} adapter has no send/place method")
    raise RuntimeError("no DAW adapter is available in n2m.bridge.daw")


class _Signals(QObject):
    done = pyqtSignal(bool, str)


class _Task(QRunnable):
    def __init__(self, path: str, target: str, signals: _Signals) -> None:
        super().__init__()
        self.path, self.target, self.signals = path, target, signals

    def run(self) -> None:
        try:
            msg = send(self.path, self.target)
        except Exception as exc:  # an adapter's failure must reach the panel, not kill a thread
            self.signals.done.emit(False, str(exc) or type(exc).__name__)
            return
        self.signals.done.emit(True, msg)


def send_async(parent: QObject, path: str, target: str, on_done: Callable[[bool, str], None]) -> None:
    """Run `send` in the global thread pool; `on_done(ok, message)` is called on the GUI thread."""
    signals = _Signals(parent)
    signals.done.connect(on_done)
    signals.done.connect(signals.deleteLater)
    QThreadPool.globalInstance().start(_Task(path, target, signals))
