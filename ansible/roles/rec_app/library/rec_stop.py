#!/usr/bin/python
"""Ansible module: stop the units of rec.target in dependency order, in one round trip
(rec_app's handler `rec restart`; docs/bundle.md, "Releases").

`systemctl stop A B C` enqueues one stop job per unit, each its own transaction, in the order
given. systemd orders a stop job only against the jobs already queued: a unit whose job comes
before the job of a unit ordered After= it stops at once, before that unit (a release switch
once found rec-account-sync stopping 1.7 s before rec-trade-executor, which still had orders in
flight, because ConsistsOf= happened to list it first). So the units are given in stop order:
each before every unit it is After= (trading, then rec-trade-executor, then data in, then
rec-migrate), and each job then waits for the ones queued before it.
"""

from __future__ import annotations

import graphlib
import subprocess

DOCUMENTATION = r"""
module: rec_stop
short_description: stop the units of rec.target, each before the units it is ordered after
options:
  target: {type: str, default: rec.target, description: The target whose units (ConsistsOf=) stop.}
  keep: {type: list, elements: str, default: [], description: Units left running.}
"""


def systemctl(*args: str) -> str:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True,
                          check=True).stdout


def stop_order(after: dict[str, set[str]]) -> list[str]:
    """The units of ``after`` (unit -> the units it is After=) in the order to stop them: each
    before every unit of the set it is ordered after; otherwise by name."""
    graph = graphlib.TopologicalSorter()
    for unit in sorted(after):
        graph.add(unit)
        for dep in sorted(after[unit] & after.keys()):
            graph.add(dep, unit)  # dep stops once unit has
    return list(graph.static_order())


def units_after(target: str, keep: set[str]) -> dict[str, set[str]]:
    """The target's units (but ``keep``) and the units each is After=."""
    units = sorted(set(systemctl("show", "-p", "ConsistsOf", "--value", target).split()) - keep)
    if not units:
        return {}
    out = systemctl("show", "-p", "Id,After", *units)
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
              for block in out.strip().split("\n\n")]
    return {b["Id"]: set(b.get("After", "").split()) for b in blocks if b.get("Id") in units}


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(argument_spec={
        "target": {"type": "str", "default": "rec.target"},
        "keep": {"type": "list", "elements": "str", "default": []},
    })
    try:
        systemctl("daemon-reload")
        order = stop_order(units_after(module.params["target"], set(module.params["keep"])))
        if order:
            systemctl("stop", *order)
    except subprocess.CalledProcessError as exc:
        module.fail_json(msg=f"{' '.join(exc.cmd)}: {exc.stderr.strip()}")
    module.exit_json(changed=bool(order), stopped=order)


if __name__ == "__main__":
    main()
