"""n2m doctor: real probes of this machine, and the exit code when a model is missing or corrupt."""

import ast
import json
import pathlib

from n2m.bridge import doctor

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_doctor_imports_only_stdlib_and_bridge():
    tree = ast.parse((ROOT / "bridge" / "doctor.py").read_text())
    top = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top.add(node.module.split(".")[0])
    allowed = {"argparse", "ctypes", "importlib", "json", "os", "shutil", "sys", "dataclasses", "pathlib",
               "__future__", "n2m", "onnxruntime"}  # onnxruntime only inside a function, after find_spec
    assert top <= allowed, top - allowed


def test_missing_model_fails_with_fix(tmp_path, capsys):
    # input tried: an empty models directory
    rc = doctor.main(["--models", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "shipped model" in out and "fix:" in out and "not ready to generate" in out


def test_corrupt_manifest_is_reported(tmp_path, capsys):
    # input tried: a manifest.json that is not JSON
    (tmp_path / "m1").mkdir()
    (tmp_path / "m1" / "manifest.json").write_text("{not json")
    rc = doctor.main(["--models", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 1 and "m1" in out and "re-export" in out


def test_valid_manifest_passes_when_runtime_present(tmp_path, capsys):
    (tmp_path / "m1").mkdir()
    (tmp_path / "m1" / "manifest.json").write_text(json.dumps({"corpus_id": "n2m-synth-x"}))
    rc = doctor.main(["--models", str(tmp_path), "--json"])
    checks = json.loads(capsys.readouterr().out)
    by = {(c["group"], c["name"]): c for c in checks}
    assert by[("models", "m1")]["ok"]
    assert by[("onnxruntime", "CPU provider")]["ok"]  # the real onnxruntime of this environment
    required_bad = [c for c in checks if c["required"] and not c["ok"]]
    assert rc == (1 if required_bad else 0)


def test_soundfont_and_fluidsynth_checks_name_debian_packages():
    checks = doctor.check_soundfonts() + doctor.check_fluidsynth()
    for c in checks:
        if not c.ok:
            assert "apt-get install" in c.fix
    assert any(c.name == "fluidsynth" for c in checks)


def test_one_onnxruntime_distribution_is_checked() -> None:
    """Both distributions installed (what pip leaves after `pip install onnxruntime-gpu` beside the
    runtime's onnxruntime) is refused with the fix; one of either is fine; none is the runtime's fix."""
    from n2m.bridge.doctor import check_ort_distribution, ort_distributions

    both = check_ort_distribution(["onnxruntime", "onnxruntime-gpu"])
    assert not both.ok and both.required and "setup.sh gpu" in both.fix
    assert check_ort_distribution(["onnxruntime-gpu"]).ok and check_ort_distribution(["onnxruntime"]).ok
    none = check_ort_distribution([])
    assert not none.ok and none.fix == "pip install ."
    assert ort_distributions() == ["onnxruntime"]  # this environment: the CPU build alone
