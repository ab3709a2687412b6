"""The last stop and start of the rec units went in dependency order (systemd's own timestamps):
trading stopped before rec-trade-executor began stopping, the executor before data in; data in
READY before the executor began starting, the executor READY before trading, and rec-migrate
done before data in. Prints each step; exits 1 naming the first step out of order. A release
from before the order was put in its units (the service registry's AFTER) is only reported."""

import subprocess
import sys

TRADING = ["rec-auto-entry", "rec-coordinator", "rec-trade-manager", "rec-trade-supervisor"]
EXECUTOR = "rec-trade-executor"
DATA_IN = ["rec-market-feed", "rec-account-sync", "rec-price-feed"]
PROPS = ["ActiveEnterTimestampMonotonic", "ActiveExitTimestampMonotonic",
         "InactiveEnterTimestampMonotonic", "InactiveExitTimestampMonotonic"]


def show(unit):
    out = subprocess.run(["systemctl", "show", f"{unit}.service", "-p", ",".join(PROPS)],
                         capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, _, v in (line.partition("=") for line in out.splitlines())}


after = subprocess.run(["systemctl", "show", f"{EXECUTOR}.service", "-p", "After", "--value"],
                       capture_output=True, text=True, check=True).stdout.split()
if not {f"{u}.service" for u in DATA_IN} <= set(after):
    print(f"not checked: this release's {EXECUTOR} is not ordered after data in ({after})")
    sys.exit(0)
t = {u: show(u) for u in [*TRADING, EXECUTOR, *DATA_IN, "rec-migrate"]}
steps = []
for u in TRADING:  # (earlier, later): the first must not be after the second
    steps.append((f"{u} stopped", t[u]["InactiveEnterTimestampMonotonic"],
                  f"{EXECUTOR} began stopping", t[EXECUTOR]["ActiveExitTimestampMonotonic"]))
for u in DATA_IN:
    steps.append((f"{EXECUTOR} stopped", t[EXECUTOR]["InactiveEnterTimestampMonotonic"],
                  f"{u} began stopping", t[u]["ActiveExitTimestampMonotonic"]))
    steps.append(("rec-migrate done", t["rec-migrate"]["ActiveEnterTimestampMonotonic"],
                  f"{u} began starting", t[u]["InactiveExitTimestampMonotonic"]))
    steps.append((f"{u} ready", t[u]["ActiveEnterTimestampMonotonic"],
                  f"{EXECUTOR} began starting", t[EXECUTOR]["InactiveExitTimestampMonotonic"]))
for u in TRADING:
    steps.append((f"{EXECUTOR} ready", t[EXECUTOR]["ActiveEnterTimestampMonotonic"],
                  f"{u} began starting", t[u]["InactiveExitTimestampMonotonic"]))
bad = None
for first, a, second, b in steps:
    ok = 0 < a <= b
    print(f"{'ok ' if ok else 'BAD'} {first} ({a / 1e6:.3f}) <= {second} ({b / 1e6:.3f})")
    bad = bad or (None if ok else f"{first} after {second}")
if bad:
    print(f"out of order: {bad}", file=sys.stderr)
    sys.exit(1)
