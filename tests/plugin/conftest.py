"""Fixtures for the panel's tests: isolated QSettings, WAV files, and a real `n2m serve` daemon."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
N2M = REPO / ".venv" / "bin" / "n2m"
# the installed command, else (a checkout without .venv, such as a git worktree) this interpreter
N2M_CMD = [str(N2M)] if N2M.exists() else [sys.executable, "-m", "n2m.bridge.cli"]


@pytest.fixture
def qsettings(tmp_path, monkeypatch):
    """A private settings file; also points the Trash (XDG data home) into tmp_path."""
    from PyQt6.QtCore import QSettings

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    return QSettings(str(tmp_path / "panel.ini"), QSettings.Format.IniFormat)


@dataclass
class DaemonProc:
    """A real `n2m serve` process on a loopback port, with its output collected."""

    model: Path
    out: Path
    library: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    lines: list[str] = field(default_factory=list)
    threads: int | None = 1  # None: the daemon's own default, as a producer runs it

    def start(self, timeout: float = 90.0) -> None:
        cmd = [*N2M_CMD, "serve", "--model", str(self.model), "--port", str(self.port),
               "--out", str(self.out), "--library", str(self.library), "--grace", "2"]
        if self.threads is not None:
            cmd += ["--threads", str(self.threads)]
        self.lines = []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        ready = threading.Event()

        def pump(p: subprocess.Popen) -> None:
            assert p.stdout is not None
            for line in p.stdout:
                self.lines.append(line.rstrip())
                m = re.search(r"listening on \S+ [\d.]+:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=pump, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.2):
            if time.monotonic() > deadline:
                break
        if not self.port or self.proc.poll() is not None:
            out = "\n".join(self.lines[-20:])
            self.stop()
            raise RuntimeError(f"n2m serve did not start:\n{out}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def daemon(request, tmp_path) -> Iterator[DaemonProc]:
    """`n2m serve` with the tiny random-weight model from tests/conftest.py's `tiny_model_dir`."""
    try:
        model = request.getfixturevalue("tiny_model_dir")
    except pytest.FixtureLookupError:
        pytest.skip("needs the `tiny_model_dir` fixture (tests/conftest.py, the engine's tiny ONNX cascade), "
                    "which is not there yet")
    try:
        import n2m.bridge.daemon  # noqa: F401
        import n2m.bridge.engine  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the daemon cannot run yet: {exc}")
    d = DaemonProc(Path(model), tmp_path / "clips", tmp_path / "lib.sqlite")
    d.start()
    yield d
    d.stop()


@pytest.fixture
def shipped_daemon(tmp_path) -> Iterator[DaemonProc]:
    """`n2m serve` with the shipped default model and the daemon's own thread count."""
    d = DaemonProc(REPO / "bridge" / "models" / "default", tmp_path / "clips", tmp_path / "lib.sqlite",
                   threads=None)
    d.start(timeout=180)
    yield d
    d.stop()


@pytest.fixture
def python_exe() -> str:
    return sys.executable
