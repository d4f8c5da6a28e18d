"""DAW adapters: place an n2m clip on a track by talking OSC to the DAW (install steps: docs/daw.md).

    from n2m.bridge.daw import ADAPTERS, send_clip
    send_clip("/path/clip.wav", "reaper")   # or "ardour", "bitwig", "live"

- REAPER: the clip path goes to a hand-off file, then OSC `/action/_N2M_INSERT_CLIP` runs the
  ReaScript `reaper/n2m_insert_clip.lua`, which inserts it at the edit cursor on the selected track.
- Ardour: the same hand-off file, then OSC `/access_action "LuaAction/script-N"` runs the Lua
  action `ardour/n2m_import_clip.lua`, which imports it at the playhead on the selected (or first)
  audio track.
- Bitwig (DrivenByMoss OSC): `/track/N/clip/M/insertFile path`.
- Ableton Live 12.0.5+ (AbletonOSC-style): `/live/clip_slot/create_audio_clip track slot path`
  (Live's ClipSlot.create_audio_clip, new in 12.0.5).

Tempo and meter: Live answers `/live/song/get/tempo` and `/live/song/get/signature_*`; REAPER and
Bitwig send `/tempo/raw` as feedback. `tempo_from_feedback` turns those into the daemon's
`/n2m/set/tempo` / `/n2m/set/meter`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n2m.bridge import protocol as P
from n2m.bridge.osc import decode_packet, encode_message

SCRIPTS = Path(__file__).resolve().parent
Message = tuple[str, list[Any]]


def handoff_path() -> Path:
    """The file the REAPER and Ardour scripts read the clip path from (one line: the path)."""
    from n2m.bridge.library import data_home

    return Path(os.environ.get("N2M_DAW_HANDOFF", data_home() / "daw" / "next_clip.txt"))


def write_handoff(clip: str | os.PathLike[str], path: Path | None = None) -> Path:
    """Atomically write the clip's absolute path to the hand-off file."""
    target = path or handoff_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    clip_path = Path(clip).resolve()
    if not clip_path.is_file():
        raise FileNotFoundError(f"no clip at {clip_path}")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(str(clip_path) + "\n")
    os.replace(tmp, target)
    return target


def _send(host: str, port: int, messages: list[Message]) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
        for address, args in messages:
            s.sendto(encode_message(address, args), (host, port))


@dataclass(frozen=True)
class Reaper:
    host: str = "127.0.0.1"
    port: int = 8000  # REAPER's default OSC "local listen port"
    action: str = "_N2M_INSERT_CLIP"  # the script's command ID (set in the action list)

    def messages(self, path: str) -> list[Message]:
        return [(f"/action/{self.action}", [])]

    def send(self, path: str) -> str:
        write_handoff(path)
        _send(self.host, self.port, self.messages(path))
        return f"sent to REAPER at {self.host}:{self.port}"


@dataclass(frozen=True)
class Ardour:
    host: str = "127.0.0.1"
    port: int = 3819  # Ardour's OSC port
    action: str = "LuaAction/script-1"  # the Lua action slot the script is bound to

    def messages(self, path: str) -> list[Message]:
        return [("/access_action", [self.action])]

    def send(self, path: str) -> str:
        write_handoff(path)
        _send(self.host, self.port, self.messages(path))
        return f"sent to Ardour at {self.host}:{self.port}"


@dataclass(frozen=True)
class Bitwig:
    host: str = "127.0.0.1"
    port: int = 8000  # DrivenByMoss OSC receive port
    track: int = 1  # 1-based, in the current track bank
    slot: int = 1

    def messages(self, path: str) -> list[Message]:
        return [(f"/track/{self.track}/clip/{self.slot}/insertFile", [str(Path(path).resolve())])]

    def send(self, path: str) -> str:
        _send(self.host, self.port, self.messages(path))
        return f"sent to Bitwig (DrivenByMoss) track {self.track} slot {self.slot}"


@dataclass(frozen=True)
class Live:
    host: str = "127.0.0.1"
    port: int = 11000  # AbletonOSC's listen port
    track: int = 0  # 0-based, as AbletonOSC counts
    slot: int = 0

    def messages(self, path: str) -> list[Message]:
        return [("/live/clip_slot/create_audio_clip", [self.track, self.slot, str(Path(path).resolve())])]

    def send(self, path: str) -> str:
        _send(self.host, self.port, self.messages(path))
        return f"sent to Live track {self.track} slot {self.slot}"

    def query_tempo(self, timeout: float = 1.0, reply_port: int = 11001) -> tuple[float, int, int] | None:
        """(bpm, numerator, denominator) from AbletonOSC, or None when Live does not answer."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", reply_port))
            s.settimeout(timeout)
            want = {"/live/song/get/tempo": None, "/live/song/get/signature_numerator": None,
                    "/live/song/get/signature_denominator": None}
            for addr in want:
                s.sendto(encode_message(addr, []), (self.host, self.port))
            try:
                while any(v is None for v in want.values()):
                    for m in decode_packet(s.recv(65536)):
                        if m.address in want and m.params:
                            want[m.address] = m.params[-1]
            except (TimeoutError, ValueError):
                return None
        return (float(want["/live/song/get/tempo"]), int(want["/live/song/get/signature_numerator"]),
                int(want["/live/song/get/signature_denominator"]))


ADAPTERS: dict[str, Any] = {"reaper": Reaper(), "ardour": Ardour(), "bitwig": Bitwig(), "live": Live()}


def send_clip(path: str, target: str = "") -> str:
    """Place a clip with the named adapter (default: $N2M_DAW, else REAPER)."""
    name = (target or os.environ.get("N2M_DAW", "reaper")).lower()
    if name not in ADAPTERS:
        raise ValueError(f"unknown DAW {name!r}: one of {', '.join(sorted(ADAPTERS))}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"no clip at {path}")
    return ADAPTERS[name].send(path)


def tempo_from_feedback(address: str, args: list[Any]) -> Message | None:
    """A DAW's tempo/meter feedback as the daemon's DAW-sync message, or None if it is not one."""
    if address in {"/tempo/raw", "/live/song/get/tempo"} and args:
        return (P.SET_TEMPO, [float(args[-1])])
    if address == "/n2m/daw/meter" and len(args) == 2:
        return (P.SET_METER, [int(args[0]), int(args[1])])
    return None
