"""rec-paper's account across restarts: one JSON file under the state dir, replaced
atomically (docs/paper.md, "Restarts").

Why a file and not rec's PostgreSQL: rec-paper stands in for the exchange, whose books are
not rec's. Kept in rec's database, a restore of that database (the restore drill, a
rollback) would roll the "exchange" back with rec's books and hide the very disagreements
`rec ledger check` is there to find; and rec-paper would need the database password and an
ordering after PostgreSQL it otherwise does without. The file is small (the paper accounts:
balance, positions, orders, fills, settlements, order groups), written whole.

What is saved is what the exchange knows of rec's accounts (every account but the unlimited
mirror account ``sim-replay``) and the exchange's id counters, so ids issued after a restart
never repeat one issued before. The mirrored book is not saved: the live exchange's
snapshots rebuild it.

When: a :class:`Journal` observer notes every change to an account (orders, fills,
positions, order groups) and writes the file on the next turn of the event loop;
:class:`Durable` also writes it before any HTTP response starts, so an order the engine
has acknowledged is on disk first.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from app.sim.accounts import Account, FillRecord, Position, SettlementRecord
from app.sim.fees import FeeAccumulator, FeeCharge
from app.sim.matching import Order
from app.sim.order_groups import OrderGroup
from app.sim.venue import Exchange, Observer

log = logging.getLogger("rec.paper")
VERSION = 1
FILE_NAME = "account.json"


def path_in(paper_dir: Path) -> Path:
    return paper_dir / FILE_NAME


# --- the exchange's accounts <-> JSON ------------------------------------------------------

def dump(ex: Exchange) -> dict[str, Any]:
    accounts = [a for a in ex.accounts.values() if not a.unlimited]
    groups = ex.order_groups
    return {"version": VERSION, "seq": ex._seq, "group_seq": groups._seq,
            "accounts": [_account(a) for a in accounts],
            "order_groups": [_group(g) for g in groups.groups.values()]}


def _account(a: Account) -> dict[str, Any]:
    return {"account_id": a.account_id, "user_id": a.user_id, "cash": a.cash,
            "updated_ms": a.updated_ms,
            "positions": [dict(vars(p)) for p in a.positions.values()],
            "orders": [_order(o) for o in a.orders.values()],
            "resting": list(a.resting),
            "fills": [{**vars(f), "charge": dict(vars(f.charge))} for f in a.fills],
            "settlements": [dict(vars(s)) for s in a.settlements]}


def _order(o: Order) -> dict[str, Any]:
    # flat copies, not dataclasses.asdict (its deep copy was 9/10 of a write's time);
    # in_book is left out: the book is rebuilt, restored resting orders are added again
    d = {k: v for k, v in vars(o).items() if k != "in_book"}
    d["fees"] = dict(vars(o.fees))
    return d


def _group(g: OrderGroup) -> dict[str, Any]:
    return {"group_id": g.group_id, "account_id": g.account_id, "limit": g.limit,
            "triggered": g.triggered, "orders": g.orders, "matched": list(g.matched)}


def restore(ex: Exchange, data: dict[str, Any]) -> list[Order]:
    """Put the saved accounts and order groups into ``ex`` (before it has any of its own);
    returns the orders that were resting, not yet in any book (the caller adds them back
    where their market still trades)."""
    ex._seq = max(ex._seq, int(data["seq"]))
    resting: list[Order] = []
    for a in data["accounts"]:
        acct = ex.account(a["account_id"], cash=int(a["cash"]))
        acct.cash, acct.user_id, acct.updated_ms = int(a["cash"]), a["user_id"], a["updated_ms"]
        acct.positions = {p["ticker"]: Position(**p) for p in a["positions"]}
        for o in a["orders"]:
            order = Order(**{**o, "fees": FeeAccumulator(**o["fees"])})
            acct.orders[order.order_id] = ex.orders[order.order_id] = order
            if order.client_order_id:
                acct.by_client_id[order.client_order_id] = order
        for order_id in a["resting"]:
            resting.append(acct.orders[order_id])
        acct.fills = [FillRecord(**{**f, "charge": FeeCharge(**f["charge"])})
                      for f in a["fills"]]
        acct.settlements = [SettlementRecord(**s) for s in a["settlements"]]
    groups = ex.order_groups
    groups._seq = max(groups._seq, int(data["group_seq"]))
    for g in data["order_groups"]:
        groups.groups[g["group_id"]] = OrderGroup(
            g["group_id"], g["account_id"], int(g["limit"]), bool(g["triggered"]),
            list(g["orders"]), deque((int(t), int(n)) for t, n in g["matched"]))
    return resting


# --- the file ---------------------------------------------------------------------------------

def read(path: Path) -> dict[str, Any] | None:
    """The saved accounts, or None when there is no file yet (a first start); ValueError
    when it is not a file this rec wrote."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError(f"not a paper account file of version {VERSION}")
    return data


def write(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` atomically: a reader (or a crash) sees the old file or
    the new one, whole; fsynced, file and directory, before it counts as written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640), "wb") as f:
        f.write(orjson.dumps(data))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Journal(Observer):
    """Writes the accounts to ``path`` after each change (an exchange observer)."""

    def __init__(self, ex: Exchange, path: Path) -> None:
        self.ex = ex
        self.path = path
        self.dirty = False
        self.scheduled = False
        self.failing = False

    def changed(self) -> None:
        self.dirty = True
        if self.scheduled:
            return
        try:
            asyncio.get_running_loop().call_soon(self._scheduled)
        except RuntimeError:  # no loop (yet): the next flush() writes it
            return
        self.scheduled = True

    def _scheduled(self) -> None:
        self.scheduled = False
        self.flush()

    def flush(self) -> None:
        if not self.dirty:
            return
        try:
            write(self.path, dump(self.ex))
        except OSError as exc:
            if not self.failing:
                log.error("paper: cannot write the account file %s: %s (retried at the "
                          "next change)", self.path, exc)
            self.failing = True
            return
        self.dirty = self.failing = False

    # every change the exchange makes to an account of rec's (the unlimited mirror account
    # is never reported)
    def order(self, account: Account, order: Order) -> None:
        self.changed()

    def fill(self, account: Account, fill: FillRecord, market: Any) -> None:
        self.changed()

    def position(self, account: Account, ticker: str) -> None:
        self.changed()

    def order_group(self, account: Account | None, msg: dict) -> None:
        self.changed()


class Durable:
    """ASGI middleware: the account file is written before any HTTP response starts, so
    whatever a response acknowledges (an order placed, canceled, amended) survives a crash
    that follows it."""

    def __init__(self, app: Any, journal: Journal) -> None:
        self.app, self.journal = app, journal

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def flushing_send(message) -> None:
            if message["type"] == "http.response.start":
                self.journal.flush()
            await send(message)

        await self.app(scope, receive, flushing_send)
