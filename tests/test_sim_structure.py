"""The simulator package's structure: no import cycles between its modules (type-only
imports counted too), and no function above ruff's complexity limit of 10."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parent.parent / "app" / "sim"


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for p in SIM.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app.sim"):
                if node.module == "app.sim":
                    deps.update(f"app.sim.{a.name}" for a in node.names)
                else:
                    deps.add(node.module)
        graph[f"app.sim.{p.stem}"] = deps
    return graph


def test_no_import_cycles():
    graph = _imports()
    for start in graph:
        stack, seen = [start], set()
        while stack:
            for dep in graph.get(stack.pop(), ()):
                assert dep != start, f"{start} imports itself through {dep}"
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)


def test_no_function_is_too_complex():
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed next to the interpreter")
    out = subprocess.run([str(ruff), "check", "--select", "C901", "--config",
                          "lint.mccabe.max-complexity=10", str(SIM)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
