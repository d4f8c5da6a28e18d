"""The house rules that keep n2m readable, checked on the source: no module over 450 lines and no
function over 80 in the three worlds (tests not counted)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORLDS = ("bridge", "exporter", "plugin")


def _sources() -> list[Path]:
    return sorted(p for w in WORLDS for p in (ROOT / w).rglob("*.py"))


def test_no_module_over_450_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _sources() if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long


def test_no_function_over_80_lines() -> None:
    long = {}
    for p in _sources():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    long[f"{p.relative_to(ROOT)}:{node.name}"] = n
    assert not long, long
    assert len(_sources()) > 50  # the scan saw the worlds
