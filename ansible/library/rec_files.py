#!/usr/bin/python
"""Ansible module: rec_app's system group, user, directories and files in one round trip.

A re-converge that changes nothing paid about 0.3 s a podman round trip (more under load) for
every group, user, directory and file task; this makes them one. Each piece is brought to what
is asked only where it differs: a missing system group or user is created, a directory made or
given its owner, group and mode (all five mode digits: a setgid bit is cleared as well as set),
a file written atomically when its bytes differ and its owner, group and mode set. Check mode
reports what would change and touches nothing; diff mode gives each changed file's before and
after (run the task with no_log for secrets).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
import tempfile

DOCUMENTATION = r"""
module: rec_files
short_description: rec_app's group, user, directories and files in one round trip
options:
  group: {type: str, description: System group to create when missing.}
  user:
    type: dict
    description: System user to create when missing (name, group, home, shell); no home is made.
  dirs:
    type: list
    elements: dict
    default: []
    description: Directories (path, owner, group, mode), made or corrected in this order.
  files:
    type: list
    elements: dict
    default: []
    description: Files (path, content, owner, group, mode) written when they differ.
  group_rw:
    type: dict
    description: >-
      Files under these directories (dirs) owned by this user (owner) that the group cannot
      read and write are given g+rw (what a host that ran every unit as one user left 0600).
"""


def ids(owner: str, group: str) -> tuple[int, int]:
    return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid


def _exists(lookup, name: str) -> bool:
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def differs(path: str, owner: str, group: str, mode: str, check_mode: bool) -> bool:
    """Whether ``path`` lacks that owner, group or mode (a user or group that does not exist
    yet, in check mode, counts as a difference)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return True
    try:
        uid, gid = ids(owner, group)
    except KeyError:
        if check_mode:
            return True
        raise
    return (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != (uid, gid, int(mode, 8))


def read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def write(path: str, content: bytes, owner: str, group: str, mode: str) -> None:
    """Atomically: a temporary file beside it, owner and mode set, then renamed over it."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.chown(tmp, *ids(owner, group))
        os.chmod(tmp, int(mode, 8))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def create_identity(group: str | None, user: dict | None, check_mode: bool) -> list[str]:
    created = []
    if group and not _exists(grp.getgrnam, group):
        created.append(f"group {group}")
        if not check_mode:
            subprocess.run(["groupadd", "--system", group], capture_output=True, text=True,
                           check=True)
    if user and not _exists(pwd.getpwnam, user["name"]):
        created.append(f"user {user['name']}")
        if not check_mode:
            subprocess.run(["useradd", "--system", "--gid", user["group"], "--no-create-home",
                            "--home-dir", user["home"], "--shell", user["shell"], user["name"]],
                           capture_output=True, text=True, check=True)
    return created


def share_with_group(dirs: list[str], owner: str, check_mode: bool) -> list[str]:
    """Files under ``dirs`` owned by ``owner`` without g+rw: given it (named)."""
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        return []  # no such user yet: nothing of theirs
    out = []
    for top in dirs:
        for root, _, names in os.walk(top):
            for name in names:
                path = os.path.join(root, name)
                st = os.lstat(path)
                if (stat.S_ISREG(st.st_mode) and st.st_uid == uid
                        and st.st_mode & 0o060 != 0o060):
                    out.append(path)
                    if not check_mode:
                        os.chmod(path, stat.S_IMODE(st.st_mode) | 0o060)
    return out


def apply(dirs: list[dict], files: list[dict], check_mode: bool, group: str | None = None,
          user: dict | None = None, group_rw: dict | None = None) -> dict:
    changed = create_identity(group, user, check_mode)
    for d in dirs:
        if differs(d["path"], d["owner"], d["group"], d["mode"], check_mode):
            changed.append(d["path"])
            if not check_mode:
                os.makedirs(d["path"], exist_ok=True)
                os.chown(d["path"], *ids(d["owner"], d["group"]))
                os.chmod(d["path"], int(d["mode"], 8))
    diff = []
    for f in files:
        content, before = f["content"].encode(), read(f["path"])
        if before == content and not differs(f["path"], f["owner"], f["group"], f["mode"],
                                             check_mode):
            continue
        changed.append(f["path"])
        if before != content:
            diff.append({"before_header": f["path"], "after_header": f["path"],
                         "before": (before or b"").decode(errors="replace"),
                         "after": f["content"]})
        if not check_mode:
            write(f["path"], content, f["owner"], f["group"], f["mode"])
    if group_rw:
        changed += share_with_group(group_rw["dirs"], group_rw["owner"], check_mode)
    return {"changed": bool(changed), "changed_paths": changed, "diff": diff}


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    entry = {"type": "list", "elements": "dict", "default": []}
    module = AnsibleModule(
        argument_spec={"group": {"type": "str"}, "user": {"type": "dict"},
                       "dirs": entry, "files": entry, "group_rw": {"type": "dict"}},
        supports_check_mode=True)
    p = module.params
    try:
        result = apply(p["dirs"], [{**f, "content": str(f["content"])} for f in p["files"]],
                       module.check_mode, p["group"], p["user"], p["group_rw"])
    except (OSError, KeyError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        module.fail_json(msg=f"rec_files: {detail.strip()}")
    if not module._diff:
        del result["diff"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
