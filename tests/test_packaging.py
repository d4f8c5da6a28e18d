"""The package layout: every sub-package is installed, and the runtime world stays torch- and Qt-free."""

import ast
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORLDS = {"bridge": "n2m.bridge", "exporter": "n2m.exporter", "plugin": "n2m.plugin"}


def test_every_subpackage_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder, name in WORLDS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    assert found <= listed, f"add to pyproject's packages: {sorted(found - listed)}"


def _imports(folder: str) -> set[tuple[str, str]]:
    hits = set()
    for py in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text(), str(py))):
            if isinstance(node, ast.Import):
                hits |= {(str(py.relative_to(ROOT)), a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                hits.add((str(py.relative_to(ROOT)), node.module.split(".")[0]))
    return hits


def test_bridge_never_imports_torch_or_qt():
    bad = {(f, m) for f, m in _imports("bridge") if m in {"torch", "PyQt6", "PySide6", "librosa", "scipy"}}
    assert not bad, bad


def test_plugin_never_imports_torch():
    bad = {(f, m) for f, m in _imports("plugin") if m == "torch"}
    assert not bad, bad
