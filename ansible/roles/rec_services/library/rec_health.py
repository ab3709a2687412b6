#!/usr/bin/python
"""Ansible module: prove the rec units healthy in one round trip.

Every unit active (for Type=notify: READY=1 received; a oneshot: exited with success), still
the same invocation after `settle_sec` (no crash loop), and every health URL answering 200.
Fails with the units (or URLs) that are not, and a one-line report per unit either way.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from ansible.module_utils.rec_systemd import show

DOCUMENTATION = r"""
module: rec_health
short_description: Every rec unit active, READY and stable, every health URL 200
options:
  units: {type: list, elements: str, required: true, description: The rec units.}
  services:
    type: list
    elements: dict
    default: []
    description: Entries of `rec services --json`; each health path on its port must answer 200.
  host: {type: str, default: 127.0.0.1, description: The address the health URLs use.}
  settle_sec: {type: float, default: 3, description: How long a unit must keep its invocation.}
"""

PROPERTIES = ("Id", "Type", "ActiveState", "SubState", "Result", "InvocationID", "NRestarts",
              "StatusText")


def healthy(before: dict[str, str], after: dict[str, str]) -> bool:
    running = "exited" if after.get("Type") == "oneshot" else "running"
    return (after.get("ActiveState") == "active" and after.get("SubState") == running
            and after.get("Result") == "success"
            and after.get("InvocationID") == before.get("InvocationID"))


def report_line(s: dict[str, str]) -> str:
    return (f"{s['Id']}: {s.get('ActiveState')}/{s.get('SubState')} result={s.get('Result')} "
            f"restarts={s.get('NRestarts')} status=\"{s.get('StatusText', '')}\"")


def http_status(url: str, timeout: float = 5.0) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return str(r.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def health_urls(services: list[dict], host: str) -> list[str]:
    return [f"http://{host}:{s['port']}{path}" for s in services if s.get("port")
            for path in s.get("health") or ()]


def check(units: list[str], urls: list[str], settle_sec: float) -> tuple[list[str], list[str]]:
    """(what is not healthy, one report line per unit and failing URL)."""
    first = show(units, PROPERTIES)
    time.sleep(settle_sec)
    second = show(units, PROPERTIES)
    bad = [u for u in units if not healthy(first.get(u, {}), second.get(u, {}))]
    report = [report_line(second.get(u, {"Id": u})) for u in units]
    for url in urls:
        code = http_status(url)
        if code != "200":
            bad.append(url)
            report.append(f"{url}: {code}")
    return bad, report


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={"units": {"type": "list", "elements": "str", "required": True},
                       "services": {"type": "list", "elements": "dict", "default": []},
                       "host": {"type": "str", "default": "127.0.0.1"},
                       "settle_sec": {"type": "float", "default": 3.0}},
        supports_check_mode=True)
    p = module.params
    bad, report = check(p["units"], health_urls(p["services"], p["host"]), p["settle_sec"])
    if bad:
        module.fail_json(msg=f"not healthy: {', '.join(bad)}", bad=bad, report=report)
    module.exit_json(changed=False, bad=[], report=report)


if __name__ == "__main__":
    main()
