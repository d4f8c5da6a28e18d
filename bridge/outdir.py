"""Output folders checked before any work starts: made if missing, refused in one line if not usable.

A folder under a regular file, a path that is a file, or a folder that cannot take a new file
(permissions, read-only or full file system) is refused with `OutDirError`, whose message says
which part of the path is wrong, so the CLI and the daemon can answer before a model is loaded
or a request is queued.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

__all__ = ["OutDirError", "usable_dir"]


class OutDirError(ValueError):
    """A folder clips cannot be written to; the message is one line."""


def _blocking_file(path: Path) -> Path | None:
    """The first existing non-folder on the way to `path` (itself included), if any."""
    for part in reversed([path, *path.parents]):
        if part.exists() and not part.is_dir():
            return part
    return None


def usable_dir(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """`path` as an existing, writable folder (made with its parents if missing), or OutDirError."""
    p = Path(path).expanduser()
    if not str(p) or "\0" in str(p):
        raise OutDirError(f"{what} {str(path)!r} is not a valid path")
    blocker = _blocking_file(p)
    if blocker is not None:
        where = "is a file" if blocker == p else f"is under {blocker}, which is a file"
        raise OutDirError(f"{what} {p} {where}, not a folder: choose a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".n2m-probe-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise OutDirError(f"{what} {p} cannot be written ({reason}): choose another folder") from None
    return p
