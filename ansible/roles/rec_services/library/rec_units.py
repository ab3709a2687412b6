#!/usr/bin/python
"""Ansible module: make the rec unit files in one round trip.

Creates the system user every unit file names (`User=`: each unit its own identity, primary
group `group`), writes the unit files it is given (only those whose bytes differ, atomically,
root:root 0644),
stops, disables and removes every rec unit file in the directory it was NOT given (what the
registry no longer holds, or this account mode leaves out), runs one `systemctl daemon-reload`
when anything changed, and enables the units named in `enable`. Operators' drop-in
directories (`rec-web.service.d/`) are left alone.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import tempfile

from ansible.module_utils.rec_systemd import systemctl

DOCUMENTATION = r"""
module: rec_units
short_description: Write the rec unit files, remove the ones not rendered, reload and enable
options:
  dir: {type: path, required: true, description: Unit directory (/etc/systemd/system).}
  files: {type: dict, required: true, description: File name -> content of every rec unit.}
  enable: {type: list, elements: str, default: [], description: Units to enable.}
  group: {type: str, required: true, description: Primary group of the units' users.}
"""

# what this role owns in the unit directory: rec.target, rec-<name>.service, rec-<name>@.service,
# rec-<name>.path, rec-<name>.socket
OWNED = re.compile(r"^rec(-[a-z0-9][a-z0-9-]*@?)?\.(service|target|path|socket)$")


def owned_files(unit_dir: str) -> set[str]:
    """The rec unit files (regular files or links) in ``unit_dir``."""
    return {name for name in os.listdir(unit_dir)
            if OWNED.match(name) and not os.path.isdir(os.path.join(unit_dir, name))}


def stale(unit_dir: str, files: dict[str, str]) -> list[str]:
    """Rec unit files in ``unit_dir`` that were not rendered this run."""
    return sorted(owned_files(unit_dir) - set(files))


def differing(unit_dir: str, files: dict[str, str]) -> list[str]:
    """Rendered files whose content on disk differs (or that are missing)."""
    out = []
    for name, content in sorted(files.items()):
        try:
            with open(os.path.join(unit_dir, name), "rb") as f:
                same = f.read() == content.encode()
        except FileNotFoundError:
            same = False
        if not same:
            out.append(name)
    return out


def write(unit_dir: str, name: str, content: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=unit_dir, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content.encode())
        os.chmod(tmp, 0o644)
        if os.geteuid() == 0:
            os.chown(tmp, 0, 0)
        os.replace(tmp, os.path.join(unit_dir, name))
    except BaseException:
        os.unlink(tmp)
        raise


def users(files: dict[str, str]) -> list[str]:
    """The users the unit files run as (``User=``), each once."""
    return sorted({m for content in files.values()
                   for m in re.findall(r"^User=(\S+)$", content, re.M)})


def missing_users(names: list[str]) -> list[str]:
    out = []
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            out.append(name)
    return out


def create_user(name: str, group: str) -> None:
    """A system user with no home and no shell: a unit's identity, nothing to log in as."""
    subprocess.run(["useradd", "--system", "--gid", group, "--no-create-home",
                    "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                    "--comment", f"rec unit {name}", name],
                   capture_output=True, text=True, check=True)


def not_enabled(units: list[str]) -> list[str]:
    if not units:
        return []
    states = systemctl("is-enabled", *units, check=False).stdout.split()
    return [u for u, s in zip(units, states, strict=False) if s not in ("enabled", "static")]


def apply(unit_dir: str, files: dict[str, str], enable: list[str], check_mode: bool,
          group: str = "rec") -> dict:
    removed, written = stale(unit_dir, files), differing(unit_dir, files)
    created = missing_users(users(files))
    if check_mode:
        return {"changed": bool(removed or written or created), "written": written,
                "removed": removed, "enabled": enable, "users_created": created}
    for name in created:
        create_user(name, group)
    # a unit to remove still runs: stop it and drop its rec.target.wants link first
    instances = [u for u in removed if "@" not in u]  # a template (rec-x@.service) never runs
    if instances:
        systemctl("disable", "--now", *instances, check=False)
    for name in removed:
        os.unlink(os.path.join(unit_dir, name))
    for name in written:
        write(unit_dir, name, files[name])
    if removed or written:
        systemctl("daemon-reload")
        if removed:
            systemctl("reset-failed", *instances, check=False)
    to_enable = not_enabled(enable)
    if to_enable:
        systemctl("enable", *to_enable)
    return {"changed": bool(removed or written or to_enable or created), "written": written,
            "removed": removed, "enabled": to_enable, "users_created": created}


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={"dir": {"type": "path", "required": True},
                       "files": {"type": "dict", "required": True},
                       "enable": {"type": "list", "elements": "str", "default": []},
                       "group": {"type": "str", "required": True}},
        supports_check_mode=True)
    p = module.params
    try:
        result = apply(p["dir"], {k: str(v) for k, v in p["files"].items()}, p["enable"],
                       module.check_mode, p["group"])
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        module.fail_json(msg=f"rec_units: {detail.strip()}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
