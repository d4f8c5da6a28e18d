"""The arguments of /n2m/generate as named options, and request folders kept inside the clip folder.

    /n2m/generate "prompt" [bpm] [key] [bars] [seed] [key=value ...]

Positional arguments come first and in that order ("" or "-" skips one); key=value options follow.
`generate_options` checks only the shape; the values are validated by `n2m.bridge.request`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from n2m.bridge.request import OPTION_KEYS, RequestError

POSITIONAL = ("bpm", "key", "bars", "seed")


def generate_options(args: list[Any]) -> dict[str, Any]:
    """OSC arguments -> {option: value}, or RequestError naming the misplaced argument."""
    kv: dict[str, Any] = {}
    pos: list[Any] = []
    for a in args:
        if isinstance(a, str) and re.match(r"^[a-z_]+=", a):
            k, _, v = a.partition("=")
            if k not in OPTION_KEYS:
                raise RequestError(f"unknown option {k!r}: one of {', '.join(sorted(OPTION_KEYS))}")
            if k in kv:
                raise RequestError(f"option {k!r} given twice")
            kv[k] = v
        elif kv:
            raise RequestError(f"positional argument {a!r} after key=value options")
        else:
            pos.append(a)
    if "prompt" not in kv:
        if not pos:
            raise RequestError('a prompt is required: /n2m/generate "prompt text" [bpm] [key] [bars] [seed]')
        kv["prompt"] = pos.pop(0)
    if not isinstance(kv["prompt"], str):
        raise RequestError(f"the prompt must be a string, got {kv['prompt']!r}")
    if len(pos) > len(POSITIONAL):
        raise RequestError(f"too many positional arguments: prompt then {' '.join(POSITIONAL)}; use key=value for more")
    for k, v in zip(POSITIONAL, pos, strict=False):
        if isinstance(v, str) and v.strip() in {"", "-"}:
            continue
        if k in kv:
            raise RequestError(f"{k} given both positionally and as {k}=")
        kv[k] = v
    return kv


def safe_subdir(root: Path, sub: str) -> Path:
    """A folder inside root named by a request, or RequestError (absolute paths and '..' refused)."""
    s = str(sub)
    if (not s or len(s) > 200 or "\0" in s or "\\" in s or s.startswith(("/", "~"))
            or any(part in {"..", "."} or part.startswith(".") for part in s.split("/"))):
        raise RequestError(f"dir {sub!r} refused: a relative folder inside the clip folder, no '..'")
    target = (root / s).resolve()
    if not target.is_relative_to(root.resolve()):
        raise RequestError(f"dir {sub!r} refused: it leads outside the clip folder")
    return target
