"""What the rec_services modules share: running systemctl and reading `systemctl show`."""

from __future__ import annotations

import subprocess


def systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, check=check)


def show(units: list[str], properties: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``systemctl show`` of every unit at once: unit -> {property: value}."""
    out = systemctl("show", "-p", ",".join(properties), *units).stdout
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
              for block in out.strip().split("\n\n")]
    return {b["Id"]: b for b in blocks if b.get("Id")}
