"""The arguments of /n2m/generate and of the edits as named options, and request folders kept inside
the clip folder.

    /n2m/generate "prompt" [bpm] [key] [bars] [seed] [key=value ...]
    /n2m/extend SOURCE ["prompt"] bars=N [key=value ...]      (and /n2m/inpaint, /n2m/vary)

Positional arguments come first and in that order ("" or "-" skips one); key=value options follow.
`generate_options` and `edit_options` check only the shape; the values are validated by
`n2m.bridge.request` and `n2m.bridge.edit`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from n2m.bridge.outdir import OutDirError, usable_dir
from n2m.bridge.request import OPTION_KEYS, RequestError

POSITIONAL = ("bpm", "key", "bars", "seed")
# what an edit takes besides its own parameter (length and rate follow the source)
EDIT_KEYS = frozenset(("prompt", "bpm", "key", "mode", "meter", "seed", "steps", "guidance", "sampler", "decoder",
                       "format", "dir", "tag"))
EDIT_PARAMS = {"extend": ("bars",), "inpaint": ("bars",), "vary": ("strength", "variations")}


def _split(args: list[Any], keys: frozenset[str]) -> tuple[list[Any], dict[str, Any]]:
    """(positional arguments, key=value options), or RequestError naming the misplaced argument."""
    kv: dict[str, Any] = {}
    pos: list[Any] = []
    for a in args:
        if isinstance(a, str) and re.match(r"^[a-z_]+=", a):
            k, _, v = a.partition("=")
            if k not in keys:
                raise RequestError(f"unknown option {k!r}: one of {', '.join(sorted(keys))}")
            if k in kv:
                raise RequestError(f"option {k!r} given twice")
            kv[k] = v
        elif kv:
            raise RequestError(f"positional argument {a!r} after key=value options")
        else:
            pos.append(a)
    return pos, kv


def generate_options(args: list[Any]) -> dict[str, Any]:
    """OSC arguments -> {option: value}, or RequestError naming the misplaced argument."""
    pos, kv = _split(args, OPTION_KEYS)
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


def edit_options(kind: str, args: list[Any]) -> tuple[int | str, dict[str, Any]]:
    """OSC arguments of an edit -> (the source: a library clip id or a file path, {option: value})."""
    param = EDIT_PARAMS[kind][0]
    usage = f'/n2m/{kind} SOURCE ["prompt"] {param}=... [key=value ...] (SOURCE: a file path or a clip id)'
    pos, kv = _split(args, EDIT_KEYS | set(EDIT_PARAMS[kind]))
    if not pos:
        raise RequestError(f"a source is required: {usage}")
    source = pos.pop(0)
    if isinstance(source, bool) or not isinstance(source, int | str) or source == "":
        raise RequestError(f"the source must be a file path or a library clip id, got {source!r}")
    if isinstance(source, str) and re.fullmatch(r"\s*\d{1,18}\s*", source):
        source = int(source)
    elif isinstance(source, str) and not Path(source).is_absolute():
        raise RequestError(f"the source {source!r} is not an absolute path (the daemon has no folder of yours to "
                           "start from) nor a clip id")
    if pos:
        if "prompt" in kv or len(pos) > 1 or not isinstance(pos[0], str):
            raise RequestError(f"too many positional arguments: {usage}")
        kv["prompt"] = pos[0]
    if param not in kv:
        raise RequestError(f"{param}= is required: {usage}")
    return source, kv


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


def clip_dir(root: Path, sub: str | None) -> Path:
    """Where a request's clips go: the clip folder or its `dir=` sub-folder, usable (RequestError if not)."""
    out_dir = root if sub is None else safe_subdir(root, sub)
    try:
        usable_dir(out_dir, "clip folder")
    except OutDirError as exc:
        raise RequestError(str(exc)) from None
    return out_dir
