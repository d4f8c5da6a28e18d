"""The panel's remembered state: settings, prompt history and the form.

Everything goes through one `QSettings` handed in by the caller (the app uses the user's
"n2m/panel" store; tests pass an INI file in a temporary folder), so nothing is global.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from PyQt6.QtCore import QSettings, QStandardPaths

from n2m.bridge import protocol

FORMATS: tuple[str, ...] = ("wav24", "wav32f", "flac")
SAMPLERATES: tuple[int, ...] = (0, 44100, 48000, 96000)  # 0 = follow the DAW / the daemon
HISTORY_MAX = 200


def default_output_dir() -> str:
    music = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MusicLocation)
    return str(Path(music or Path.home() / "Music") / "n2m")


@dataclass
class PanelSettings:
    daemon: str = f"{protocol.DEFAULT_HOST}:{protocol.DEFAULT_PORT}"
    output_dir: str = ""  # --out for a daemon the panel starts ("" = the daemon's default)
    samplerate: int = 0
    format: str = "wav24"
    loudness: float = -14.0  # LUFS
    autostart: bool = True  # start `n2m serve` when no daemon answers on a local address
    model: str = ""  # --model for a daemon the panel starts ("" = the daemon's default)
    send_settings: bool = True  # pass samplerate/format/loudness/out with each request
    daw: str = ""  # the DAW adapter "send to DAW" uses ("" = first available)

    def generate_extras(self) -> tuple[tuple[str, str], ...]:
        """key=value pairs the settings add to /n2m/generate."""
        if not self.send_settings:
            return ()
        out: list[tuple[str, str]] = []
        if self.samplerate:
            out.append(("samplerate", str(self.samplerate)))
        if self.format != "wav24":
            out.append(("format", self.format))
        if self.loudness != -14.0:
            out.append(("lufs", f"{self.loudness:g}"))
        return tuple(out)


class SettingsStore:
    def __init__(self, qsettings: QSettings) -> None:
        self.q = qsettings

    # -- settings --------------------------------------------------------------------------------
    def load(self) -> PanelSettings:
        s = PanelSettings()
        for f in fields(PanelSettings):
            raw = self.q.value(f"settings/{f.name}")
            if raw is None:
                continue
            default = getattr(s, f.name)
            try:
                if isinstance(default, bool):
                    value = raw if isinstance(raw, bool) else str(raw).lower() in {"1", "true", "yes"}
                else:
                    value = type(default)(raw)
            except (TypeError, ValueError):
                continue
            setattr(s, f.name, value)
        if s.format not in FORMATS:
            s.format = "wav24"
        return s

    def save(self, s: PanelSettings) -> None:
        for k, v in asdict(s).items():
            self.q.setValue(f"settings/{k}", v)
        self.q.sync()

    # -- prompt history --------------------------------------------------------------------------
    def history(self) -> list[str]:
        return self._json_list("history/prompts")

    def add_history(self, prompt: str) -> list[str]:
        p = prompt.strip()
        items = [h for h in self.history() if h != p]
        if p:
            items.insert(0, p)
        items = items[:HISTORY_MAX]
        self._set_json("history/prompts", items)
        return items

    # -- form ------------------------------------------------------------------------------------
    def form(self) -> dict:
        raw = self.q.value("form/state")
        try:
            d = json.loads(raw) if isinstance(raw, str) else {}
        except ValueError:
            d = {}
        return d if isinstance(d, dict) else {}

    def save_form(self, state: dict) -> None:
        self._set_json("form/state", state)

    # -- helpers ---------------------------------------------------------------------------------
    def _json_list(self, key: str) -> list:
        raw = self.q.value(key)
        try:
            v = json.loads(raw) if isinstance(raw, str) else []
        except ValueError:
            return []
        return v if isinstance(v, list) else []

    def _set_json(self, key: str, value: object) -> None:
        self.q.setValue(key, json.dumps(value))
        self.q.sync()
