"""A seeded chaos soak's parts that need no test fixture: the fault schedule drawn from a
seed, a PostgreSQL restart in place, and the invariants the books must meet at the end.

tests/test_chaos.py drives the schedule against every service as a real process;
benchmarks/chaos.py runs that test for any seed and length and prints its figures.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field

HOUR_MS = 3_600_000
MIN_MS = 60_000

# every trading and data service (rec-web and rec-journal do not touch the books)
SERVICES = ("market-feed", "price-feed", "account-sync", "coordinator", "trade-manager",
            "trade-executor", "trade-supervisor", "auto-entry")


@dataclass(frozen=True)
class Fault:
    at_ms: int  # simulated time
    kind: str
    args: dict = field(default_factory=dict, hash=False, compare=False)


def schedule(seed: int, hours: int, start_ms: int) -> list[Fault]:
    """The faults of a run, at seeded random moments of its ``hours`` after ``start_ms``
    (the first hourly close is at start_ms + 1 h). Every kind at least once; the frequent
    ones about once an hour."""
    rng = random.Random(seed)
    end = start_ms + hours * HOUR_MS
    first = start_ms + 3 * MIN_MS

    def anytime() -> int:
        return rng.randrange(first, end - 5 * MIN_MS)

    def a_close() -> int:  # one of the run's hourly closes
        return start_ms + rng.randint(1, hours) * HOUR_MS

    out: list[Fault] = []
    for svc in SERVICES:
        for _ in range(1 + (hours // 2 if svc in ("trade-executor", "trade-manager") else 0)):
            out.append(Fault(anytime(), "kill9", {"service": svc,
                                                  "down_ms": rng.randint(5, 90) * 1000}))
    for _ in range(max(1, hours // 2)):
        out.append(Fault(anytime(), "kill9_in_flight", {"service": "trade-executor"}))
    for _ in range(hours):
        out.append(Fault(anytime(), "lose_response", {"status": rng.choice([502, 504]),
                                                      "count": rng.randint(1, 3)}))
        out.append(Fault(anytime(), "http_storm", {"status": rng.choice([429, 500, 503]),
                                                   "count": rng.randint(2, 6)}))
        out.append(Fault(anytime(), "drop_ws"))
        close = a_close()
        out.append(Fault(close - rng.randint(2, 20) * 1000, "close_racing_settlement",
                         {"close_ms": close}))
    for _ in range(max(1, hours // 3)):
        out.append(Fault(anytime(), "pg_restart"))
        close = a_close()
        out.append(Fault(close - rng.randint(3, 10) * MIN_MS, "feed_outage_over_close",
                         {"service": "market-feed",
                          "down_ms": rng.randint(12, 20) * MIN_MS}))
    out.append(Fault(anytime(), "halt", {"down_ms": 15 * MIN_MS}))
    return sorted(out, key=lambda f: f.at_ms)


def pause_window(seed: int, hours: int, start_ms: int) -> tuple[int, int]:
    """The scheduled trading pause (the exchange's maintenance window) of a run: 20 minutes
    at a seeded moment, as simulated ms."""
    rng = random.Random(seed ^ 0x5EED)
    begin = start_ms + rng.randrange(10 * MIN_MS, hours * HOUR_MS - 30 * MIN_MS, MIN_MS)
    return begin, begin + 20 * MIN_MS




@dataclass
class Invariant:
    name: str
    figure: object
    holds: bool


def invariants(acct, balance0: int, legs: dict[str, str], trades: list[tuple],
               unfinished: int, ledger: dict, ledger_rc: int,
               paused: list[list[int]]) -> list[Invariant]:
    """The books against the simulator's account at the end of a run.

    ``legs``: client_order_id -> state; ``trades``: (id, pnl_cents, fees) rows; ``ledger``:
    `rec ledger check --json`'s result and ``ledger_rc`` its exit status; ``paused``: the
    [start, end) of each halt and scheduled pause, simulated ms."""
    from decimal import Decimal

    coids = [o.client_order_id for o in acct.orders.values()]
    dupes = sum(n - 1 for n in Counter(coids).values() if n > 1)
    sent = {c for c, s in legs.items() if s in ("accepted", "cancel", "canceled")}
    kinds = Counter(d["kind"] for d in ledger.get("differences", []))
    cash_cents = (acct.balance - balance0) // 100
    pnl = sum(t[1] for t in trades if t[1] is not None)
    fees_books = sum((t[2] for t in trades), Decimal(0))
    fees_ex = sum((Decimal(f.fee) / 10_000 for f in acct.fills), Decimal(0))
    in_pause = sum(any(a <= o.created_ms < b for a, b in paused) for o in acct.orders.values())
    return [
        Invariant("duplicate client_order_ids", dupes, dupes == 0),
        Invariant("orders created inside a halt or pause", in_pause, in_pause == 0),
        Invariant("orders without leg", len(set(coids) - set(legs)),
                  not set(coids) - set(legs)),
        Invariant("sent legs without order", len(sent - set(coids)), not sent - set(coids)),
        Invariant("unowned fills (no leg / not booked in a trade)",
                  f"{kinds['unowned_fill']} / {kinds['trade_fills_unbooked']}",
                  not kinds["unowned_fill"] and not kinds["trade_fills_unbooked"]),
        Invariant("trades left unfinished", unfinished, unfinished == 0),
        Invariant("trades' P&L - exchange cash change (cents)",
                  f"{pnl} - {cash_cents} = {pnl - cash_cents}", pnl == cash_cents),
        Invariant("fees booked - fees charged ($)",
                  f"{fees_books} - {fees_ex} = {fees_books - fees_ex}", fees_books == fees_ex),
        Invariant("rec ledger check exit status",
                  f"{ledger_rc} ({', '.join(f'{k} {n}' for k, n in kinds.items()) or 'equal'})",
                  ledger_rc == 0),
    ]


# --- what names a failure's cause: the offending trades' whole record ---------------------------

TRADE_SQL = ("SELECT id, status, ticker, side, quantity, entry_cost, exit_proceeds, fees, "
             "pnl_cents, market_result, close_attempts, reason FROM trades WHERE id = %s")
LEGS_SQL = ("SELECT leg, client_order_id, state, exchange_order_id, fill_count, remaining_count, "
            "error_code, in_doubt_since IS NOT NULL AS in_doubt FROM trade_orders "
            "WHERE trade_id = %s ORDER BY created_at")
EVENTS_SQL = ("SELECT to_char(ts, 'HH24:MI:SS.MS'), kind, from_status, to_status, detail "
              "FROM trade_events WHERE trade_id = %s ORDER BY id")


def offending_trades(ledger: dict, unfinished_ids: list[int]) -> list[int]:
    """The trades a ledger result names, and those left unfinished."""
    ids = {d.get("ids", {}).get("trade_id") for d in ledger.get("differences", [])}
    return sorted({i for i in ids if i is not None} | set(unfinished_ids))


def sim_time(ms: int) -> str:
    """A simulated time as hh:mm:ss.mmm UTC."""
    return time.strftime("%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}"


def exchange_lines(acct, coids: set[str]) -> tuple[list[str], list[int]]:
    """The simulator's orders and fills of ``coids`` (prices in $, simulated times) and the
    simulated moments they span."""
    orders = [o for o in acct.orders.values() if o.client_order_id in coids]
    oids = {o.order_id for o in orders}
    fills = [f for f in acct.fills if f.order_id in oids]
    lines = [f"  order {o.client_order_id} {o.order_id[:8]} {o.action} {o.side} "
             f"{o.initial_count} at ${o.side_price / 10_000} {o.status} filled {o.filled} "
             f"created {sim_time(o.created_ms)} updated {sim_time(o.updated_ms)}" for o in orders]
    lines += [f"  fill {f.fill_id[:8]} of {f.order_id[:8]} {f.action} {f.side} {f.count} at "
              f"YES ${f.yes_price / 10_000} fee ${f.fee / 10_000} "
              f"{'taker' if f.is_taker else 'maker'} {sim_time(f.ts_ms)}" for f in fills]
    return lines, [o.created_ms for o in orders] + [f.ts_ms for f in fills]


def fault_lines(log: list[tuple[int, str, dict]], moments: list[int]) -> list[str]:
    """The faults injected within a minute of any of ``moments`` (simulated ms)."""
    return [f"  fault {sim_time(at)} {kind} {args or ''}" for at, kind, args in log
            if any(abs(at - m) <= MIN_MS for m in moments)]
