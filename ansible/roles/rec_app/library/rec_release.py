#!/usr/bin/python
"""Ansible module: rec's releases on an app host, in one round trip (docs/bundle.md, "Releases").

    /opt/rec/releases/<version>/   one release: the bundle's code and a venv of its own
    /opt/rec/current  -> releases/<version>   what every unit and /usr/local/bin/rec run
    /opt/rec/previous -> releases/<version>   what ran before it (rollback.yml goes back to it)

A release's version is the bundle's identity: the rec package version (pyproject.toml) and the
first 12 hex of the bundle tarball's SHA-1 (what Ansible's copy reports as its checksum), e.g.
``0.1.0-3f2a9c1d0b7e``: the same code and wheels always make the same version.

state=present: the release ``version`` (empty: the bundle's) is made ready: already installed,
or installed from the bundle when the bundle is that version, else the module fails with one
line. A host with the old layout (one venv in /opt/rec/venv, the code in /opt/rec) first has
the bundle it last installed turned into a release, which becomes ``current``. A host with no
release yet gets ``current`` at once (nothing runs). Nothing running is touched otherwise:
``switch`` says whether ``current`` must move (rec_app's handler does it with the units stopped).

state=current: ``current`` points at ``version`` (``previous`` at what it pointed to), then
releases beyond the newest ``keep`` are removed (never current nor previous), and so is what
is left of the old layout. state=query: the links and releases only.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile

DOCUMENTATION = r"""
module: rec_release
short_description: rec's releases (/opt/rec/releases/<version>, the current and previous links)
options:
  home: {type: path, required: true, description: rec_app_home (/opt/rec).}
  state: {type: str, default: present, choices: [present, current, query], description: What to do.}
  bundle: {type: path, description: The bundle tarball on the target (state=present).}
  bundle_version: {type: str, description: The bundle's version when known (no tarball read).}
  version: {type: str, default: "", description: The release wanted; empty = the bundle's.}
  keep: {type: int, default: 3, description: Releases kept (current and previous always).}
"""

# what the old layout unpacked into /opt/rec beside its venv (scripts/wheelhouse BUNDLE_ITEMS)
OLD_ITEMS = ("venv", "app", "pyproject.toml", "requirements.txt", "scripts", "docs",
             ".env.example", "config.example.json", "wheelhouse", "build")
OLD_BUNDLE = ".bundle/rec-bundle.tar.gz"  # the old layout's copy of the bundle it installed
OLD_MARK = ".bundle/installed"            # ... and that bundle's checksum
COMPLETE = ".complete"                    # written last: a release without it is redone
PIP = ("--disable-pip-version-check", "--no-cache-dir", "-q", "--no-index")


class Refused(Exception):
    """What the module cannot do, in one line."""


def sha1(path: str) -> str:
    h = hashlib.sha1()  # Ansible's checksum: an identity, not a security check
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundle_version(path: str) -> str:
    """<rec package version>-<first 12 hex of the tarball's SHA-1>. The tarball is read as a
    stream up to its pyproject.toml only (its members are sorted by name: the wheelhouse comes
    after)."""
    text = ""
    with tarfile.open(path, "r|gz") as tar:
        for member in tar:
            if member.name == "pyproject.toml":
                text = tar.extractfile(member).read().decode()
                break
    m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    if not m:
        raise Refused(f"{path}: no version in its pyproject.toml")
    return f"{m.group(1)}-{sha1(path)[:12]}"


def releases_dir(home: str) -> str:
    return os.path.join(home, "releases")


def link(home: str, name: str) -> str | None:
    """The release a link (current, previous) points at, or None."""
    path = os.path.join(home, name)
    return os.path.basename(os.readlink(path)) if os.path.islink(path) else None


def installed(home: str) -> list[str]:
    """Complete releases, oldest install first."""
    root = releases_dir(home)
    if not os.path.isdir(root):
        return []
    done = [n for n in os.listdir(root) if os.path.exists(os.path.join(root, n, COMPLETE))]
    return sorted(done, key=lambda n: (os.stat(os.path.join(root, n, COMPLETE)).st_mtime, n))


def run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    if r.returncode:
        raise Refused(f"{' '.join(argv)} failed ({r.returncode}): "
                      f"{(r.stderr or r.stdout).strip()[-2000:]}")


def install(home: str, bundle: str, version: str) -> None:
    """Unpack the bundle into releases/<version> and make its venv there (a venv cannot move:
    it is made where it runs), from its own wheelhouse; the wheelhouse goes after."""
    dest = os.path.join(releases_dir(home), version)
    shutil.rmtree(dest, ignore_errors=True)  # a release left half made
    os.makedirs(dest, mode=0o755)
    run(["tar", "-xzf", bundle, "-C", dest, "--no-same-owner"])
    venv, wheels = os.path.join(dest, "venv"), os.path.join(dest, "wheelhouse")
    run(["python3", "-m", "venv", venv])
    pip = [os.path.join(venv, "bin/pip"), "install", *PIP, "--find-links", wheels]
    run([*pip, "-r", os.path.join(dest, "requirements.txt")])
    run([*pip, "--no-deps", dest])
    run([os.path.join(venv, "bin/rec"), "--help"])
    for leftover in ("wheelhouse", "build"):
        shutil.rmtree(os.path.join(dest, leftover), ignore_errors=True)
    with open(os.path.join(dest, COMPLETE), "w") as f:
        f.write(f"{version}\n")


def point(home: str, name: str, version: str) -> None:
    """Move a link atomically (a new link renamed over the old one)."""
    path = os.path.join(home, name)
    tmp = f"{path}.new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.join("releases", version), tmp)
    os.replace(tmp, path)


def old_layout(home: str) -> bool:
    venv = os.path.join(home, "venv")
    return os.path.isdir(venv) and not os.path.islink(venv)


def convert(home: str) -> str | None:
    """The old layout's bundle, installed as a release and made current (it is what runs)."""
    if link(home, "current") or not old_layout(home):
        return None
    bundle = os.path.join(home, OLD_BUNDLE)
    if not os.path.isfile(bundle):
        raise Refused(f"{home}/venv is the old layout but {bundle} is gone: "
                      f"remove {home}/venv and converge again")
    version = bundle_version(bundle)
    if version not in installed(home):
        install(home, bundle, version)
    point(home, "current", version)
    return version


def present(home: str, bundle: str, wanted: str, have: str | None = None) -> dict:
    converted = convert(home)
    have = have or bundle_version(bundle)
    version = wanted or have
    new = version not in installed(home)
    if new:
        if version != have:
            raise Refused(f"release {version} is not installed on this host and the bundle is "
                          f"{have}: installed are {', '.join(installed(home)) or 'none'}")
        install(home, bundle, version)
    current = link(home, "current")
    if current is None:
        point(home, "current", version)
        current = version
    return {"changed": bool(converted or new), "version": version, "bundle_version": have,
            "converted": converted, "installed_now": new, "switch": current != version,
            "current": current, "previous": link(home, "previous")}


def in_use(home: str) -> set[str]:
    """What a running process runs from: the release names (and "venv", the old layout's)
    its command line names (the simulator keeps running across a switch)."""
    found = set()
    pattern = re.compile(re.escape(home.rstrip("/")) + r"/(?:releases/([^/\0]+)|(venv))/")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        for release, old in pattern.findall(cmdline):
            found.add(release or old)
    return found


def prune(home: str, keep: int) -> list[str]:
    """Releases beyond the newest ``keep`` (never current nor previous, nor one a process
    runs from), and what is left of the old layout once a release is current and nothing
    runs from it (a later run removes what is still in use)."""
    busy = in_use(home)
    spare = {link(home, "current"), link(home, "previous")} | busy
    done = installed(home)
    kept = set(done[-keep:]) if keep > 0 else set()
    removed = []
    root = releases_dir(home)
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if name in spare or name in kept or name.endswith(".new"):
            continue
        shutil.rmtree(os.path.join(root, name))
        removed.append(f"releases/{name}")
    if link(home, "current") and "venv" not in busy:
        for item in (*OLD_ITEMS, OLD_BUNDLE, OLD_MARK):
            path = os.path.join(home, item)
            if os.path.islink(path) or os.path.isfile(path):
                os.unlink(path)
            elif os.path.isdir(path):
                shutil.rmtree(path)
            else:
                continue
            removed.append(item)
    return removed


def make_current(home: str, version: str, keep: int) -> dict:
    if version not in installed(home):
        raise Refused(f"release {version} is not installed on this host: installed are "
                      f"{', '.join(installed(home)) or 'none'}")
    before = link(home, "current")
    if before != version:
        if before:
            point(home, "previous", before)
        point(home, "current", version)
    removed = prune(home, keep)
    return {"changed": before != version or bool(removed), "current": version,
            "previous": link(home, "previous"), "removed": removed}


def query(home: str) -> dict:
    return {"changed": False, "current": link(home, "current"),
            "previous": link(home, "previous"), "releases": installed(home)}


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(argument_spec={
        "home": {"type": "path", "required": True},
        "state": {"type": "str", "default": "present",
                  "choices": ["present", "current", "query"]},
        "bundle": {"type": "path"},
        "bundle_version": {"type": "str"},
        "version": {"type": "str", "default": ""},
        "keep": {"type": "int", "default": 3},
    }, required_if=[("state", "present", ["bundle"]), ("state", "current", ["version"])])
    p = module.params
    try:
        if p["state"] == "present":
            result = present(p["home"], p["bundle"], p["version"], p["bundle_version"])
        elif p["state"] == "current":
            result = make_current(p["home"], p["version"], p["keep"])
        else:
            result = query(p["home"])
    except Refused as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
