"""scripts/wheelhouse: portable (hashlib/tarfile), deterministic, one bundle per arch + Python.

The download tests build real wheelhouses for targets this controller is not (aarch64, and
CPython 3.12/3.13 besides Debian 12's 3.11) and check every wheel's tags against what that
target's pip would accept: the Mac/ARM path and the Ubuntu/Debian 13 path at the wheel level.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts/wheelhouse"


def load_wheelhouse():
    loader = importlib.machinery.SourceFileLoader("rec_wheelhouse", str(SCRIPT))
    spec = importlib.util.spec_from_loader("rec_wheelhouse", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


wh = load_wheelhouse()


def run(*args: str) -> subprocess.CompletedProcess:
    """The script with no PATH at all: it may use nothing but Python and pip (as on a Mac,
    where sha256sum and GNU tar are missing)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PATH", "REC_PYTHON")}
    env.update(PATH="/nonexistent", REC_PYTHON=sys.executable)
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=600, cwd=REPO, env=env)


def test_script_calls_no_platform_tool():
    """No sha256sum, no GNU tar, no shell: only Python and pip (a Mac has no GNU tools)."""
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env python3")
    code = text.split('"""', 2)[2]
    calls = re.findall(r"subprocess\.run\(\[([^,\]]+)", code)
    assert calls == ["pip_python()"], calls
    for tool in ("sha256sum", "shasum", "--sort", "gzip -n", "shell=True"):
        assert tool not in code, tool


@pytest.mark.parametrize(("target", "found"), [
    ("i686-3.11", "architecture i686, Python 3.11"),
    ("x86_64-3.10", "architecture x86_64, Python 3.10"),     # Ubuntu 22.04's Python
    ("aarch64-3.9", "architecture aarch64, Python 3.9"),
])
def test_unsupported_target_is_refused_in_one_line(target, found, tmp_path):
    r = run("--out", str(tmp_path), target)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert found in lines[0] and "x86_64/aarch64 with CPython 3.11, 3.12, 3.13" in lines[0]
    assert not list(tmp_path.iterdir())


def test_targets_parse():
    assert wh.parse_target("x86_64") == ("x86_64", "3.11")
    assert wh.parse_target("aarch64-3.13") == ("aarch64", "3.13")
    assert wh.parse_target("arm64-3.12") == ("aarch64", "3.12")


def make_tree(root: Path) -> None:
    (root / "app/sub/__pycache__").mkdir(parents=True)
    (root / "app/__init__.py").write_text("x = 1\n")
    (root / "app/sub/mod.py").write_text("y = 2\n")
    (root / "app/sub/__pycache__/mod.cpython-311.pyc").write_bytes(b"junk")
    (root / "app/sub/z.pyc").write_bytes(b"junk")
    (root / "requirements.txt").write_text("a==1\n")
    tool = root / "app/tool.sh"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o775)


def test_tarball_is_byte_identical_for_identical_content(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    out1, out2 = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    assert wh.write_tarball(wh.bundle_files(src), out1)
    # touch every file (mtime, atime) and rebuild: same bytes
    for p in src.rglob("*"):
        p.touch()
    assert wh.write_tarball(wh.bundle_files(src), out2)
    assert out1.read_bytes() == out2.read_bytes()
    assert not wh.write_tarball(wh.bundle_files(src), out1), "unchanged content rewrote the file"
    with tarfile.open(out1) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert "app/sub/mod.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    modes = {m.name: m.mode for m in members}
    assert modes["app/tool.sh"] == 0o755 and modes["app/__init__.py"] == 0o644
    assert modes["app"] == 0o755
    # gzip header: mtime 0, no file name
    head = out1.read_bytes()[:10]
    assert head[4:8] == b"\0\0\0\0" and not head[3] & 0x08
    (src / "app/sub/mod.py").write_text("y = 3\n")
    assert wh.write_tarball(wh.bundle_files(src), out1)
    assert out1.read_bytes() != out2.read_bytes()


def test_tarball_of_the_same_inputs_is_not_packed_again(tmp_path, monkeypatch):
    """A re-converge with nothing changed leaves the bundle as it is without packing ~120 MB
    again (~4 s); any change of a file's bytes or mode, or a tarball that is not the one the
    stamp describes, packs it again."""
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    out = tmp_path / "b.tar.gz"
    assert wh.write_tarball(wh.bundle_files(src), out)
    first = out.read_bytes()

    class NoPacking:
        def __init__(self, *a, **k):
            raise AssertionError("packed again for the same inputs")

    with monkeypatch.context() as m:
        m.setattr(wh.gzip, "GzipFile", NoPacking)
        assert not wh.write_tarball(wh.bundle_files(src), out)
        (src / "app/sub/mod.py").write_text("y = 4\n")
        with pytest.raises(AssertionError, match="packed again"):
            wh.write_tarball(wh.bundle_files(src), out)
    assert wh.write_tarball(wh.bundle_files(src), out) and out.read_bytes() != first
    (src / "app/sub/mod.py").chmod(0o755)
    assert wh.write_tarball(wh.bundle_files(src), out)
    out.write_bytes(b"not the bundle")  # changed behind the stamp's back
    assert wh.write_tarball(wh.bundle_files(src), out)
    assert tarfile.open(out).getnames()


def accepted_tags(arch: str, py: str) -> set:
    version = tuple(int(x) for x in py.split("."))
    interp = "cp" + py.replace(".", "")
    plats = wh.platforms(arch)
    return (set(cpython_tags(version, abis=[interp, "abi3", "none"], platforms=plats))
            | set(compatible_tags(version, interpreter=interp, platforms=plats)))


def requirement_names() -> set[str]:
    names = set()
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(canonicalize_name(re.split(r"[\[<>=!~;\s]", line, maxsplit=1)[0]))
    return names


@pytest.mark.slow
@pytest.mark.parametrize("target", ["aarch64-3.11", "aarch64-3.13", "x86_64-3.12"])
def test_wheelhouse_for_another_target_resolves_with_the_right_tags(target, tmp_path):
    """Mac/ARM VM (aarch64, Debian 12 and 13), Ubuntu 24.04 droplet (x86_64, Python 3.12)."""
    r = run("--out", str(tmp_path), target)
    assert r.returncode == 0, r.stderr
    arch, py = wh.parse_target(target)
    bundle = tmp_path / f"rec-bundle-{arch}-py{py}.tar.gz"
    assert r.stdout.strip() == str(bundle)
    wheels = sorted((tmp_path / f"wheelhouse-{arch}-py{py}").glob("*.whl"))
    ok = accepted_tags(arch, py)
    other = "x86_64" if arch == "aarch64" else "aarch64"
    names, binary = set(), []
    for w in wheels:
        name, _, _, tags = parse_wheel_filename(w.name)
        names.add(name)
        assert tags & ok, f"{w.name} would not install on {target}"
        assert other not in w.name, w.name
        if arch in w.name:
            binary.append(name)
    missing = requirement_names() - names
    assert not missing, f"no wheel for {missing}"
    # the compiled dependencies really are the target's, not pure-Python stand-ins
    assert {"pydantic-core", "cryptography", "psycopg-binary", "orjson"} <= set(binary)
    interp = "cp" + py.replace(".", "")
    assert any(f"-{interp}-{interp}-" in w.name for w in wheels if "pydantic_core" in w.name)
    with tarfile.open(bundle) as tar:
        members = tar.getnames()
    assert "app/cli.py" in members and "requirements.txt" in members
    assert sorted(m for m in members if m.startswith("wheelhouse/")) == \
        sorted(f"wheelhouse/{w.name}" for w in wheels)
    # a second run reuses the wheelhouse and leaves the bundle's bytes alone
    before = bundle.read_bytes()
    r2 = run("--out", str(tmp_path), target)
    assert r2.returncode == 0 and "up to date" in r2.stderr and "unchanged" in r2.stderr
    assert io.BytesIO(bundle.read_bytes()).getvalue() == before
