"""The structure of all of app/: no import cycles between its modules (imports inside
functions and type-only imports counted too), and no function above ruff's complexity limit
of 10 (C901, configured in pyproject.toml). Neither test skips: ruff is a dev requirement, and
a missing tool is a failure."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app"


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    """The app module an import names (a package's __init__ for a package), or None."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports() -> dict[str, set[str]]:
    files = {_module(p): p for p in APP.rglob("*.py")}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from app.x import y`: y may be a module of package app.x
                targets = [f"{node.module}.{a.name}" for a in node.names] or [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps.update(t for t in (_resolve(t, modules) for t in targets if
                                    t.startswith("app.")) if t and t != name)
        graph[name] = deps
    return graph


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    stack, seen = [(start, [start])], {start}
    while stack:
        node, path = stack.pop()
        for dep in sorted(graph.get(node, ())):
            if dep == start:
                return [*path, start]
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, [*path, dep]))
    return None


def test_no_import_cycles_in_app():
    graph = _imports()
    assert len(graph) > 50  # the whole package was read
    cycles = {" -> ".join(c) for start in graph if (c := _cycle_from(start, graph))}
    assert cycles == set()


def test_no_function_in_app_is_too_complex():
    ruff = Path(sys.executable).with_name("ruff")
    assert ruff.exists(), "ruff is a dev requirement (requirements-dev.txt): install it"
    out = subprocess.run([str(ruff), "check", "--select", "C901", str(APP)], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
