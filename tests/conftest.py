"""Shared test set-up. Slow tests run only with N2M_SLOW=1; the real-Ardour test only with N2M_ARDOUR=1.

Fixtures for real-engine tests:

- `tiny_model_dir` (session): a complete exported cascade (tiny random generator and vocoder,
  the real MiniLM text encoder and tokenizer) built with the project's exporter, cached on disk
  under .pytest_cache/ keyed by a hash of the exporter and model sources, so it is built once
  (~50 s) and reused (< 1 s). Treat it as read-only. Default steps: generator 4, cascader 3.
- `tiny_checkpoints` (session): (generator.pt, vocoder.pt) the cascade was exported from.
- `tiny_model_copy` (function): a private copy of it that a test may damage; the large text
  encoder is a symlink into the cache: replace it (unlink first), never write through it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
TINY_STEPS = 4
TINY_VOCODER_STEPS = 3
_TINY_SOURCES = [
    "exporter/export.py", "exporter/onnx_unet.py", "exporter/onnx_text.py", "exporter/models/unet.py",
    "bridge/manifest.py", "bridge/schedule.py", "bridge/features.py", "bridge/controls.py",
]


def pytest_collection_modifyitems(config, items):
    slow = os.environ.get("N2M_SLOW") == "1"
    ardour = os.environ.get("N2M_ARDOUR") == "1"
    for item in items:
        if "slow" in item.keywords and not slow:
            item.add_marker(pytest.mark.skip(reason="slow: set N2M_SLOW=1 to run"))
        if "ardour" in item.keywords and not ardour:
            item.add_marker(pytest.mark.skip(reason="drives a real Ardour: set N2M_ARDOUR=1 to run"))


def _tiny_key() -> str:
    h = hashlib.sha256(f"steps={TINY_STEPS},{TINY_VOCODER_STEPS}".encode())
    for rel in _TINY_SOURCES:
        p = ROOT / rel
        h.update(rel.encode())
        h.update(p.read_bytes() if p.is_file() else b"<missing>")
    return h.hexdigest()[:16]


def _build_tiny(cache: Path) -> Path:
    """The cached tiny cascade folder, built under an exclusive lock if missing."""
    model = cache / "model"
    if (model / "manifest.json").is_file():
        return model
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other pytest processes wait for one build
        if (model / "manifest.json").is_file():
            return model
        from n2m.exporter.export import ExportOptions, export_cascade, random_checkpoint

        gen = random_checkpoint("generator", cache / "generator.pt", seed=0)
        voc = random_checkpoint("vocoder", cache / "vocoder.pt", seed=1)
        opts = ExportOptions(steps=TINY_STEPS, vocoder_steps=TINY_VOCODER_STEPS, force=True)
        export_cascade(gen, voc, model, opts, log=lambda m: None)
    return model


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    pytest.importorskip("torch")
    base = Path(os.environ.get("N2M_TEST_CACHE", ROOT / ".pytest_cache" / "n2m"))
    return _build_tiny(base / f"tiny-{_tiny_key()}")


@pytest.fixture(scope="session")
def tiny_checkpoints(tiny_model_dir: Path) -> tuple[Path, Path]:
    return tiny_model_dir.parent / "generator.pt", tiny_model_dir.parent / "vocoder.pt"


@pytest.fixture
def tiny_model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    dst.mkdir()
    for f in tiny_model_dir.iterdir():
        if f.name == "text_encoder.onnx":
            (dst / f.name).symlink_to(f)
        else:
            shutil.copy2(f, dst / f.name)
    return dst
