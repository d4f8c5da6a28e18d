"""Where a model named on the command line lives: one rule for `n2m generate`, `n2m serve` and the panel.

A folder path (anything with a '/' or starting with '.', or an existing folder) is used as it is;
a bare name is a folder under bridge/models/; nothing at all means the shipped "default".
"""

from __future__ import annotations

import re
from pathlib import Path

from n2m.bridge.manifest import ModelError

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = "default"


def resolve_model(name_or_dir: str | None, models_dir: Path | None = None) -> Path:
    """The model folder, or ModelError naming what is missing and the fix."""
    root = MODELS_DIR if models_dir is None else models_dir
    name = name_or_dir or DEFAULT_MODEL
    p = Path(name).expanduser()
    if p.is_dir() or "/" in name or name.startswith("."):
        return p
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ModelError(f"model {name!r} is neither a model folder nor a model name")
    d = root / name
    if not (d / "manifest.json").is_file():
        if name == DEFAULT_MODEL:
            raise ModelError(
                f"the default model is not installed: {d / 'manifest.json'} is missing. It is filled in "
                "by the trained cascade; until then export one with `n2m export --generator G.pt "
                f"--vocoder V.pt --out {d}`, or pass --model DIR")
        raise ModelError(f"no model {name!r}: expected {d / 'manifest.json'} (pass --model DIR for a folder elsewhere)")
    return d
