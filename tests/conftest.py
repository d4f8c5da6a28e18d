"""Shared test set-up. Slow tests run only with N2M_SLOW=1; the real-Ardour test only with N2M_ARDOUR=1.

Fixtures for real-engine tests:

- `tiny_model_dir` (session): a complete exported cascade (tiny random generator and vocoder,
  the real MiniLM text encoder and tokenizer) built with the project's exporter, cached on disk
  under .pytest_cache/ keyed by a hash of the exporter and model sources, so it is built once
  (~50 s) and reused (< 1 s). Treat it as read-only. Default steps: generator 4, cascader 3.
- `tiny_checkpoints` (session): (generator.pt, vocoder.pt) the cascade was exported from.
- `tiny_model_copy` (function): a private copy of it that a test may damage; the large text
  encoder is a symlink into the cache: replace it (unlink first), never write through it.
- `tiny_wave_superres_dir` (session): the waveform route (tiny random wavegen and cascader) ending
  in a tiny random superres stage (48 kHz), exported and cached the same way; `tiny_wave_checkpoints`
  holds its {stage: checkpoint}. Default steps: wavegen 4, cascader 3, superres 2.
- `tiny_wave_dir` (session): the same wave route without its superres stage (16 kHz), and
  `tiny_mel_superres_dir` (session): the mel cascade of `tiny_model_dir` with that superres stage
  added; both are folders whose manifests are rewritten from the exported ones (files linked).
- `tiny_fine_dir` (session): the fine route (tiny random coarse generator and spectral cascader,
  Griffin-Lim on the FINE mid/side mel): 44.1 kHz stereo. Default steps: generator 4, spectral 3.
- `tiny_side_dir` (session): the fine route whose generator has 8 side-band rows given as their
  x0 estimate (`side_x0`), exported by the `n2m export` CLI with guidance 2 and side guidance 3;
  its checkpoints lie beside it (`generator.pt`, `spectral.pt`). Steps: generator 4, spectral 2.
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
TINY_SUPERRES_STEPS = 2
_TINY_SOURCES = [
    "exporter/export/__init__.py", "exporter/export/onnx_unet.py", "exporter/export/onnx_text.py",
    "exporter/models/unet.py", "exporter/models/configs.py", "exporter/models/modules.py",
    "exporter/models/vocoder.py", "exporter/models/cascade.py",
    "bridge/manifest.py", "bridge/schedule.py", "bridge/features.py", "bridge/controls.py",
]
WAVE_STAGES = ("wavegen", "cascader", "superres")


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


def _cached(cache: Path, build) -> Path:
    """cache/model, made by `build(cache, model)` under an exclusive lock if missing (other pytest
    processes wait for one build)."""
    model = cache / "model"
    if (model / "manifest.json").is_file():
        return model
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (model / "manifest.json").is_file():
            build(cache, model)
    return model


def _build_tiny(cache: Path) -> Path:
    """The cached tiny cascade folder."""

    def build(cache: Path, model: Path) -> None:
        from n2m.exporter.export import ExportOptions, export_cascade, random_checkpoint

        gen = random_checkpoint("generator", cache / "generator.pt", seed=0)
        voc = random_checkpoint("vocoder", cache / "vocoder.pt", seed=1)
        opts = ExportOptions(steps=TINY_STEPS, vocoder_steps=TINY_VOCODER_STEPS, force=True)
        export_cascade(gen, voc, model, opts, log=lambda m: None)

    return _cached(cache, build)


def _build_tiny_wave(cache: Path, text_from: Path) -> Path:
    """The cached tiny wave-route cascade with superres (fp32 graphs; the text encoder copied from
    the tiny mel cascade)."""

    def build(cache: Path, model: Path) -> None:
        from n2m.exporter.export import ExportOptions, export_route, random_checkpoint

        ckpts = {s: random_checkpoint(s, cache / f"{s}.pt", seed=i + 2) for i, s in enumerate(WAVE_STAGES)}
        opts = ExportOptions(steps=TINY_STEPS, vocoder_steps=TINY_VOCODER_STEPS,
                             superres_steps=TINY_SUPERRES_STEPS, variants=("fp32",), text_from=text_from,
                             force=True)
        export_route(ckpts, model, opts, log=lambda m: None)

    return _cached(cache, build)


def _build_tiny_fine(cache: Path, text_from: Path) -> Path:
    """The cached tiny fine-route cascade (coarse generator, spectral cascader; fp32 graphs; the
    text encoder copied from the tiny mel cascade)."""

    def build(cache: Path, model: Path) -> None:
        from n2m.exporter.export import ExportOptions, export_route, random_checkpoint
        from n2m.exporter.models.configs import tiny_coarse_generator_config

        ckpts = {"generator": random_checkpoint("generator", cache / "generator.pt", seed=7,
                                                config=tiny_coarse_generator_config()),
                 "spectral": random_checkpoint("spectral", cache / "spectral.pt", seed=8)}
        opts = ExportOptions(steps=TINY_STEPS, vocoder_steps=TINY_VOCODER_STEPS, variants=("fp32",),
                             text_from=text_from, force=True, mel_max=2.0)
        export_route(ckpts, model, opts, log=lambda m: None)

    return _cached(cache, build)


@pytest.fixture(scope="session")
def tiny_fine_dir(tiny_model_dir: Path) -> Path:
    """The fine route (tiny random coarse generator and spectral cascader): 44.1 kHz stereo."""
    return _build_tiny_fine(tiny_model_dir.parent.parent / f"tiny-fine-{_tiny_key()}", tiny_model_dir)


SIDE_BANDS = 8


def side_x0_config():
    """The tiny coarse generator with SIDE_BANDS side-band rows given as their x0 estimate."""
    from dataclasses import replace

    from n2m.bridge.features import COARSE
    from n2m.exporter.models.configs import tiny_coarse_generator_config

    rows = COARSE.n_bins + SIDE_BANDS
    return replace(tiny_coarse_generator_config(), side_bands=SIDE_BANDS, in_channels=rows, out_channels=rows,
                   side_x0=True)


@pytest.fixture(scope="session")
def tiny_side_dir(tiny_model_dir: Path) -> Path:
    def build(cache: Path, model: Path) -> None:
        from n2m.exporter.export import main as export_main
        from n2m.exporter.export import random_checkpoint

        gen = random_checkpoint("generator", cache / "generator.pt", seed=3, config=side_x0_config())
        spec = random_checkpoint("spectral", cache / "spectral.pt", seed=8)
        rc = export_main(["--generator", str(gen), "--spectral", str(spec), "--out", str(model),
                          "--variants", "fp32", "--text-from", str(tiny_model_dir), "--steps", "4",
                          "--vocoder-steps", "2", "--guidance", "2", "--side-guidance", "3", "--mel-max", "2"])
        assert rc == 0

    return _cached(tiny_model_dir.parent.parent / f"tiny-side-{_tiny_key()}", build)


def _derived(dst: Path, manifest: dict, sources: dict[str, Path]) -> Path:
    """A model folder whose manifest is `manifest` and whose files link to `sources` (file -> path)."""
    import json

    from n2m.bridge.manifest import Manifest

    if (dst / "manifest.json").is_file():
        return dst
    tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for rel in manifest["files"]:
        (tmp / rel).symlink_to(sources[rel].resolve())
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    Manifest.load(tmp).verify(tmp)
    try:
        os.replace(tmp, dst)
    except OSError:  # another process made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


@pytest.fixture(scope="session")
def tiny_wave_superres_dir(tiny_model_dir: Path) -> Path:
    base = Path(os.environ.get("N2M_TEST_CACHE", ROOT / ".pytest_cache" / "n2m"))
    return _build_tiny_wave(base / f"tiny-wave-{_tiny_key()}", tiny_model_dir)


@pytest.fixture(scope="session")
def tiny_wave_checkpoints(tiny_wave_superres_dir: Path) -> dict[str, Path]:
    return {s: tiny_wave_superres_dir.parent / f"{s}.pt" for s in WAVE_STAGES}


@pytest.fixture(scope="session")
def tiny_wave_dir(tiny_wave_superres_dir: Path) -> Path:
    import json

    src = tiny_wave_superres_dir
    m = json.loads((src / "manifest.json").read_text())
    sup = m["stages"].pop("superres")
    for rel in sup["files"].values():
        m["files"].pop(rel)
    m["sample_rate"], m["hop"] = 16000, 320
    m["model_id"] = m["model_id"] + "-16k"
    return _derived(src.parent / "derived-wave", m, {rel: src / rel for rel in m["files"]})


@pytest.fixture(scope="session")
def tiny_mel_superres_dir(tiny_model_dir: Path, tiny_wave_superres_dir: Path) -> Path:
    import json

    mel = json.loads((tiny_model_dir / "manifest.json").read_text())
    wave = json.loads((tiny_wave_superres_dir / "manifest.json").read_text())
    sup = wave["stages"]["superres"]
    mel["stages"]["superres"] = sup
    sources = {rel: tiny_model_dir / rel for rel in mel["files"]}
    for rel in sup["files"].values():
        mel["files"][rel] = wave["files"][rel]
        sources[rel] = tiny_wave_superres_dir / rel
    mel["sample_rate"], mel["hop"] = 48000, 960
    mel["model_id"] = mel["model_id"] + "-sr"
    return _derived(tiny_wave_superres_dir.parent / "derived-mel-superres", mel, sources)


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
