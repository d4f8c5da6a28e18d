"""`n2m doctor`: what is installed and usable, each with the fix when it is missing.

Imports only the standard library and bridge; optional packages are probed with find_spec, and
onnxruntime is imported only to list its execution providers. Exit code 1 when something needed
to generate is missing (runtime packages, a shipped model), 0 otherwise: corpus and training
tools are reported but optional.
"""

from __future__ import annotations

import argparse
import ctypes.util
import importlib.util
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"

# (import name, pip name, extra, needed to generate)
PACKAGES: tuple[tuple[str, str, str, bool], ...] = (
    ("numpy", "numpy", "runtime", True),
    ("onnxruntime", "onnxruntime", "runtime", True),
    ("pedalboard", "pedalboard", "runtime", True),
    ("pythonosc", "python-osc", "runtime", True),
    ("tokenizers", "tokenizers", "runtime", True),
    ("PyQt6", "PyQt6", "panel", False),
    ("torch", "torch==2.13.0", "train", False),
    ("onnx", "onnx", "train", False),
    ("music21", "music21", "train", False),
    ("librosa", "librosa", "train", False),
    ("soundfile", "soundfile", "train", False),
    ("soxr", "soxr", "train", False),
    ("matplotlib", "matplotlib", "train", False),
    ("mir_eval", "mir_eval", "train", False),
    ("basic_pitch", "basic-pitch", "train", False),
)
# packages whose fix is not their extra: basic-pitch goes in without its dependencies (TensorFlow
# would pin numpy < 2); `n2m eval` transcribes notes with it
FIXES: dict[str, str] = {"basic-pitch": "bash scripts/setup.sh dev  (or: pip install --no-deps basic-pitch==0.4.0)"}

# (name, path, Debian package)
SOUNDFONTS: tuple[tuple[str, str, str], ...] = (
    ("FluidR3_GM", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm"),
    ("MuseScore_General", "/usr/share/sounds/sf3/MuseScore_General.sf3", "musescore-general-soundfont"),
    ("TimGM6mb", "/usr/share/sounds/sf2/TimGM6mb.sf2", "timgm6mb-soundfont"),
)


@dataclass
class Check:
    group: str
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = False  # needed to generate


def check_packages() -> list[Check]:
    out = []
    for mod, pip_name, extra, required in PACKAGES:
        ok = importlib.util.find_spec(mod) is not None
        hint = "pip install ." if extra == "runtime" else f"pip install '.[{extra}]'"
        fix = FIXES.get(pip_name, f"{hint}  (or: pip install {pip_name})")
        out.append(Check("python", pip_name, ok, "installed" if ok else "missing", "" if ok else fix, required))
    return out


ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu")  # both install the module `onnxruntime`
GPU_FIX = ("bash scripts/setup.sh gpu  (replaces onnxruntime with onnxruntime-gpu, which runs on the CPU "
           "too; CUDA needs an NVIDIA driver and the CUDA 12 / cuDNN 9 runtime)")


def ort_distributions() -> list[str]:
    """The ONNX Runtime distributions installed in this environment."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for dist in ORT_DISTRIBUTIONS:
        try:
            version(dist)
        except PackageNotFoundError:
            continue
        found.append(dist)
    return found


def check_ort_distribution(found: list[str]) -> Check:
    """Exactly one ONNX Runtime distribution: two overwrite each other's files in one module."""
    if len(found) > 1:
        return Check("onnxruntime", "one distribution", False, f"both {' and '.join(found)} are installed",
                     "pip uninstall -y onnxruntime onnxruntime-gpu, then bash scripts/setup.sh gpu "
                     "(or pip install onnxruntime for CPU only)", True)
    return Check("onnxruntime", "one distribution", bool(found), found[0] if found else "none", "" if found else
                 "pip install .", True)


def check_onnxruntime() -> list[Check]:
    if importlib.util.find_spec("onnxruntime") is None:
        return [Check("onnxruntime", "providers", False, "onnxruntime is not installed", "pip install .", True)]
    try:
        import onnxruntime as ort  # noqa: PLC0415 - probed lazily on purpose

        providers = list(ort.get_available_providers())
        version = getattr(ort, "__version__", "?")
    except Exception as exc:  # noqa: BLE001 - a broken install can raise anything
        return [Check("onnxruntime", "providers", False, f"import failed: {exc}",
                      "pip install --force-reinstall onnxruntime", True)]
    ok = "CPUExecutionProvider" in providers
    gpu = [p for p in providers if p not in ("CPUExecutionProvider", "AzureExecutionProvider")]
    detail = f"onnxruntime {version}: {', '.join(providers)}"
    out = [Check("onnxruntime", "CPU provider", ok, detail, "" if ok else "pip install --force-reinstall onnxruntime",
                 True)]
    out.append(Check("onnxruntime", "accelerated provider", bool(gpu),
                     ", ".join(gpu) if gpu else "none (CPU only: generation works, slower)",
                     "" if gpu else f"optional, for an NVIDIA GPU: {GPU_FIX}", False))
    out.append(check_ort_distribution(ort_distributions()))
    return out


def check_fluidsynth() -> list[Check]:
    lib = ctypes.util.find_library("fluidsynth")
    cli = shutil.which("fluidsynth")
    ok = bool(lib)
    detail = f"library {lib or 'missing'}; command {cli or 'missing'}"
    return [Check("corpus", "fluidsynth", ok, detail,
                  "" if ok else "sudo apt-get install fluidsynth  (Debian package `fluidsynth`, needed to build the corpus)")]


def check_soundfonts() -> list[Check]:
    out = []
    for name, path, pkg in SOUNDFONTS:
        ok = os.path.isfile(path)
        out.append(Check("corpus", f"soundfont {name}", ok, path if ok else f"{path} missing",
                         "" if ok else f"sudo apt-get install {pkg}"))
    n = sum(c.ok for c in out)
    out.append(Check("corpus", "two or more soundfonts", n >= 2, f"{n} installed",
                     "" if n >= 2 else "install at least two of: " + " ".join(p for _, _, p in SOUNDFONTS)))
    return out


def check_models(models_dir: Path = MODELS_DIR) -> list[Check]:
    manifests = sorted(models_dir.glob("*/manifest.json")) if models_dir.is_dir() else []
    if not manifests:
        return [Check("models", "shipped model", False, f"no {models_dir}/*/manifest.json",
                      "train and export one (`n2m train ...`, then `n2m export ...`) or reinstall n2m "
                      "with its default model", True)]
    out = []
    for m in manifests:
        try:
            data = json.loads(m.read_text())
            ok = isinstance(data, dict)
            detail = f"{m} parses" + (f" (corpus {data.get('corpus_id') or data.get('corpus')})"
                                      if isinstance(data, dict) and (data.get("corpus_id") or data.get("corpus")) else "")
        except (OSError, json.JSONDecodeError) as exc:
            ok, detail = False, f"{m}: {exc}"
        out.append(Check("models", m.parent.name, ok, detail,
                         "" if ok else f"re-export the model or reinstall n2m ({m} is unreadable)", True))
    return out


def run_checks(models_dir: Path = MODELS_DIR) -> list[Check]:
    return (check_packages() + check_onnxruntime() + check_fluidsynth() + check_soundfonts()
            + check_models(models_dir))


def report(checks: list[Check], file=None) -> None:
    file = file or sys.stdout
    group = None
    for c in checks:
        if c.group != group:
            group = c.group
            print(f"\n[{group}]", file=file)
        mark = "ok  " if c.ok else ("MISSING" if c.required else "missing")
        print(f"  {mark:<8}{c.name}: {c.detail}", file=file)
        if not c.ok and c.fix:
            print(f"          fix: {c.fix}", file=file)
    bad = [c for c in checks if c.required and not c.ok]
    print("", file=file)
    if bad:
        print(f"not ready to generate: {len(bad)} required item(s) missing: {', '.join(c.name for c in bad)}",
              file=file)
    else:
        print("ready to generate", file=file)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="n2m doctor", description="Check what is installed and usable.")
    ap.add_argument("--json", action="store_true", help="print the checks as JSON")
    ap.add_argument("--models", type=Path, default=MODELS_DIR, help="models directory to check")
    args = ap.parse_args(argv)
    checks = run_checks(args.models)
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=1))
    else:
        report(checks)
    return 1 if any(c.required and not c.ok for c in checks) else 0
