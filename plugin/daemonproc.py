"""Starting a daemon when none answers: `n2m serve` as a QProcess the panel owns.

Only a daemon on a local address is started, and only the one the panel started is stopped when
the panel closes. Its output is kept (last lines) so a failure to start can be shown inline.
"""

from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass

from PyQt6.QtCore import QObject, QProcess, pyqtSignal

from .osclink import DaemonAddress


@dataclass(frozen=True)
class LaunchSpec:
    address: DaemonAddress
    model: str = ""
    output_dir: str = ""
    library: str = ""
    python: str = sys.executable

    def argv(self) -> list[str]:
        args = ["-m", "n2m.bridge.cli", "serve", "--host", self.address.host,
                "--port", str(self.address.port)]
        if self.model:
            args += ["--model", self.model]
        if self.output_dir:
            args += ["--out", self.output_dir]
        if self.library:
            args += ["--library", self.library]
        return args


class DaemonProcess(QObject):
    """One `n2m serve` child process; `exited` carries a one-line reason when it stops."""

    exited = pyqtSignal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._proc: QProcess | None = None
        self._tail: deque[str] = deque(maxlen=40)
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.state() != QProcess.ProcessState.NotRunning

    def pid(self) -> int:
        return int(self._proc.processId()) if self._proc is not None else 0

    def output_tail(self) -> str:
        return "\n".join(self._tail)

    def start(self, spec: LaunchSpec) -> None:
        if self.running:
            return
        self._stopping = False
        proc = QProcess(self)
        proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        proc.readyReadStandardOutput.connect(self._read)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._error)
        self._proc = proc
        proc.start(spec.python, spec.argv())

    def stop(self, wait_ms: int = 5000) -> None:
        """Ask the daemon to shut down (SIGTERM), then kill it if it does not."""
        if self._proc is None or not self.running:
            return
        self._stopping = True
        self._proc.terminate()
        if not self._proc.waitForFinished(wait_ms):
            self._proc.kill()
            self._proc.waitForFinished(1000)

    def _read(self) -> None:
        if self._proc is None:
            return
        text = bytes(self._proc.readAllStandardOutput().data()).decode("utf-8", "replace")
        self._tail.extend(line for line in text.splitlines() if line.strip())

    def _last_line(self) -> str:
        return self._tail[-1] if self._tail else ""

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._read()
        if self._stopping:
            return
        why = self._last_line() or f"exit code {code}"
        self.exited.emit(f"the daemon the panel started stopped: {why}")

    def _error(self, err: QProcess.ProcessError) -> None:
        if err == QProcess.ProcessError.FailedToStart:
            self.exited.emit(f"could not start `n2m serve` ({self._proc.errorString() if self._proc else err})")
