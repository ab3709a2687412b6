"""A backtest's figures from what it left: rec's trades (their P&L after fees, fees, entry
method and exit rule) and the exchange's record of rec's orders and fills, and a digest
of (orders, fills, P&L) that two runs on the same input must share.

P&L is in cents after fees (the trades table's ``pnl_cents``: what the account's balance
moved); a trade without P&L (nothing filled, or not final) counts in ``trades`` only.
Max drawdown: the largest fall of the cumulative P&L from a previous high, trades taken
in the order they closed (then by id).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from app.backtest.calibration import Calibration


def usd(cents: int) -> str:
    return f"{'-' if cents < 0 else ''}${abs(cents) / 100:,.2f}"


@dataclass(frozen=True)
class Trade:
    id: int
    ticker: str
    entry: str  # entry_method: auto | manual
    exit: str  # close_rule, else close_method (settlement, manual, ...), else "open"
    pnl_cents: int | None
    fees: Decimal  # dollars
    closed_ms: int | None


@dataclass
class Report:
    trades: int
    with_pnl: int
    pnl_cents: int
    fees: Decimal
    wins: int
    max_drawdown_cents: int
    per_entry: dict[str, int] = field(default_factory=dict)
    per_exit: dict[str, int] = field(default_factory=dict)
    digest: str = ""
    # the exchange's side: the account's balance change (cents) and its fills' fees ($)
    ledger: tuple[int, Decimal] | None = None
    equity: list[int] = field(default_factory=list)  # cumulative P&L after each closed trade
    model: Calibration | None = None  # the pricing model's probabilities on the window

    @property
    def books_match(self) -> bool | None:
        """rec's P&L and fees equal the exchange's ledger (None: no ledger given)."""
        if self.ledger is None:
            return None
        return (self.pnl_cents, self.fees) == self.ledger

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.with_pnl if self.with_pnl else None

    def text(self) -> str:
        rate = "-" if self.win_rate is None else f"{self.win_rate:.0%}"
        lines = [f"trades {self.trades} ({self.with_pnl} with P&L), P&L after fees "
                 f"{usd(self.pnl_cents)}, fees ${self.fees:,.4f}, win rate {rate} "
                 f"({self.wins} of {self.with_pnl}), max drawdown "
                 f"{usd(self.max_drawdown_cents)}"]
        for name, per in (("entry", self.per_entry), ("exit", self.per_exit)):
            lines += [f"  P&L by {name} {rule}: {usd(cents)}"
                      for rule, cents in sorted(per.items())]
        if self.ledger is not None:
            lines.append(f"rec's books against the exchange's ledger: P&L {usd(self.pnl_cents)} "
                         f"/ balance change {usd(self.ledger[0])}, fees ${self.fees:,.4f} / "
                         f"${self.ledger[1]:,.4f}: "
                         + ("match" if self.books_match else "DIFFER"))
        if self.model is not None:
            lines.append(self.model.text())
        lines.append(f"digest (orders, fills, P&L): {self.digest}")
        return "\n".join(lines)


def digest(orders: list[tuple], fills: list[tuple], trades: list[Trade]) -> str:
    """sha256 of the orders and fills (each a tuple of plain values, order-free) and the
    trades' P&L and fees."""
    body = {"orders": sorted(map(list, orders)), "fills": sorted(map(list, fills)),
            "pnl": [[t.id, t.ticker, t.pnl_cents, str(t.fees)] for t in sorted(
                trades, key=lambda t: t.id)]}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def build(trades: list[Trade], orders: list[tuple], fills: list[tuple],
          ledger: tuple[int, Decimal] | None = None,
          model: Calibration | None = None) -> Report:
    done = sorted((t for t in trades if t.pnl_cents is not None),
                  key=lambda t: (t.closed_ms is None, t.closed_ms or 0, t.id))
    per_entry: dict[str, int] = defaultdict(int)
    per_exit: dict[str, int] = defaultdict(int)
    total = peak = drawdown = 0
    equity = []
    for t in done:
        pnl = t.pnl_cents or 0
        total += pnl
        equity.append(total)
        peak = max(peak, total)
        drawdown = max(drawdown, peak - total)
        per_entry[t.entry] += pnl
        per_exit[t.exit] += pnl
    return Report(trades=len(trades), with_pnl=len(done), pnl_cents=total,
                  fees=sum((t.fees for t in trades), Decimal(0)),
                  wins=sum(1 for t in done if (t.pnl_cents or 0) > 0),
                  max_drawdown_cents=drawdown, per_entry=dict(per_entry),
                  per_exit=dict(per_exit), digest=digest(orders, fills, trades),
                  ledger=ledger, equity=equity, model=model)


# rec's trades as build() takes them (a row per trade, in id order)
TRADES_SQL = ("SELECT id, ticker, entry_method, coalesce(close_rule, close_method, 'open'), "
              "pnl_cents, fees, (extract(epoch FROM closed_at) * 1000)::bigint FROM trades "
              "ORDER BY id")


def trade(row: tuple) -> Trade:
    id_, ticker, entry, exit_, pnl, fees, closed = row
    return Trade(id_, ticker, entry, exit_, pnl, Decimal(fees), closed)


def ledger(account, balance0: int) -> tuple[int, Decimal]:
    """The account's balance change since ``balance0`` in cents and its fills' fees in
    dollars (the simulator's units are $0.0001)."""
    return ((account.balance - balance0) // 100,
            sum((Decimal(f.fee) / 10_000 for f in account.fills), Decimal(0)))


def same_run(client_order_id: str) -> str:
    """``rec-<install id>-<trade>-<leg>`` without the install id, which each run's scratch
    database draws afresh (migration 005): two runs then name the same order alike."""
    head, _, rest = client_order_id.partition("-")
    return f"{head}-{rest.partition('-')[2]}" if head == "rec" and rest.count("-") >= 2 \
        else client_order_id


def exchange_record(account) -> tuple[list[tuple], list[tuple]]:
    """rec's orders and fills as the simulator holds them (an ``app.sim.accounts.Account``):
    what the digest covers, free of ids the exchange draws and of the installation's id."""
    orders = [(same_run(o.client_order_id), o.ticker, o.side, o.action, o.price, o.initial_count,
               o.filled, o.status) for o in account.orders.values()]
    fills = [(same_run(f.client_order_id), f.ticker, f.side, f.action, f.count, f.yes_price,
              f.is_taker, f.fee, f.ts_ms) for f in account.fills]
    return orders, fills
