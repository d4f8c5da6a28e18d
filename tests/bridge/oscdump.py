"""liblo's `oscdump` on a free loopback port, its lines read by a thread into a queue: select() on a
buffered pipe misses a second message that arrived in the same read."""

from __future__ import annotations

import queue
import socket
import subprocess
import threading


class OscDump:
    def __init__(self, proto: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.proc = subprocess.Popen(["oscdump", "-L", f"osc.{proto}://:{self.port}"], stdout=subprocess.PIPE, text=True)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line.strip())

    def next(self, timeout: float) -> str | None:
        """The next message without oscdump's time tag, or None after `timeout` seconds of silence."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        return line if line.startswith("/") else line.split(" ", 1)[-1]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=5)
