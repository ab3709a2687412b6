"""rec's books against the exchange's record: a pure function of the two records.

What is compared (each difference names its ids and, where money, its cents):

- orders: every exchange order by client_order_id against its leg (no order without a leg,
  no client_order_id twice, no sent leg without an order, no rejected/expired leg that the
  exchange holds an order for, the leg's exchange order id the order's);
- fills: every exchange fill against rec-account-sync's mirror (present, same count, price
  and fee) and against the leg and trade that own it (no unowned fill);
- trades: per trade, its fees and its money (entry cost, proceeds, settlement revenue, P&L)
  against the exchange's fills of its legs and the exchange's settlement of its market; no
  trade left unfinished on a market the exchange has settled;
- positions: the exchange's positions against the open trades and against the mirror;
- settlements and balance: against the mirror;
- cash: the exchange's cash change (fills, YES+NO pairs netted at $1, settlement revenue,
  fees) against the cash rec booked (P&L of finished trades, cost and proceeds of the rest).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from app.kalshi.models import Fill, Order
from app.ledger.records import ZERO, Books, ExchangeRecord, Leg, Trade
from app.trading.money import cents

ONE = Decimal(1)
SENT = ("accepted", "cancel", "canceled")  # leg states that mean an order exists
GAVE_UP = ("rejected", "expired")
UNFINISHED = ("pending", "submitted", "open", "closing")
HOLDING = ("open", "closing")


@dataclass
class Difference:
    kind: str
    ids: dict[str, object]
    detail: str
    cents: int | None = None  # rec minus exchange, where money


@dataclass
class Figure:
    """One line of the side by side view: rec's books and the exchange."""

    name: str
    books: object
    exchange: object


@dataclass
class LedgerResult:
    figures: list[Figure] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences

    def add(self, kind: str, detail: str, cents: int | None = None, **ids: object) -> None:
        self.differences.append(Difference(kind, ids, detail, cents))


def _key(d: Difference) -> tuple[str, str]:
    return d.kind, repr(sorted(d.ids.items()))


def persisting(first: LedgerResult, again: LedgerResult) -> LedgerResult:
    """``again`` (a second comparison a few seconds after ``first``) with only the
    differences that ``first`` had too (same kind, same ids): what was in flight between the
    reads of one comparison (a fill the mirror had not written yet, a balance read a moment
    before a fill) has settled by the second and is not a difference of the books."""
    seen = {_key(d) for d in first.differences}
    return LedgerResult(again.figures, [d for d in again.differences if _key(d) in seen])


def fill_price(fill: Fill, side: str) -> Decimal:
    """A fill's price per contract in ``side``'s dollars."""
    if side == "yes":
        return fill.yes_price_dollars
    return fill.no_price_dollars if fill.no_price_dollars is not None \
        else ONE - fill.yes_price_dollars


def exchange_cash(fills: list[Fill], settlements) -> Decimal:
    """The account's cash change by the exchange's own rule: a fill buys its outcome at that
    outcome's price, a contract bought against an opposite holding closes a pair that pays $1
    at once, a settlement pays its revenue; fees apart."""
    held: dict[str, Decimal] = defaultdict(Decimal)  # +YES / -NO
    cash = ZERO
    for f in sorted(fills, key=lambda f: (f.created_time is None, f.created_time, f.trade_id)):
        ticker = f.market_ticker or f.ticker or ""
        sign = 1 if f.outcome_side == "yes" else -1
        cash -= f.count_fp * fill_price(f, f.outcome_side) + (f.fee_cost or ZERO)
        opposite = max(ZERO, -held[ticker] * sign)
        cash += min(opposite, f.count_fp)
        held[ticker] += sign * f.count_fp
    return cash + sum((Decimal(s.revenue) / 100 for s in settlements), ZERO)


@dataclass
class _TradeMoney:
    bought: Decimal = ZERO
    cost: Decimal = ZERO
    sold: Decimal = ZERO
    proceeds: Decimal = ZERO
    fees: Decimal = ZERO
    fills: int = 0


def booked_cash(t: Trade) -> Decimal:
    """The cash a trade moved as rec booked it (its P&L once it is finished)."""
    if t.pnl_cents is not None:
        return Decimal(t.pnl_cents) / 100
    return (t.exit_proceeds or ZERO) - (t.entry_cost or ZERO) - t.fees


def compare(books: Books, ex: ExchangeRecord) -> LedgerResult:
    r = LedgerResult()
    orders = _orders(r, books, ex.orders)
    owner = {o.order_id: owning_leg(books, o) for o in ex.orders}
    _fills(r, books, ex, owner)
    money = _trade_money(ex.fills, owner)
    _trades(r, books, ex, money)
    _positions(r, books, ex)
    _settlements(r, books, ex)
    fees_ex = sum((f.fee_cost or ZERO for f in ex.fills), ZERO)
    fees_books = sum((t.fees for t in books.trades), ZERO)
    cash_ex = exchange_cash(ex.fills, ex.settlements)
    cash_books = sum((booked_cash(t) for t in books.trades), ZERO)
    pnl_books = sum(t.pnl_cents for t in books.trades if t.pnl_cents is not None)
    r.figures += [
        Figure("orders", sum(leg.state in SENT for leg in books.legs), len(orders)),
        Figure("fills", len(books.fills), len(ex.fills)),
        Figure("contracts filled", sum((f.count for f in books.fills), ZERO),
               sum((f.count_fp for f in ex.fills), ZERO)),
        Figure("positions", len([p for p in books.positions.values() if p]),
               len([p for p in ex.positions if p.position_fp])),
        Figure("settlements", len(books.settlements), len(ex.settlements)),
        Figure("balance (cents)", books.balance_cents, ex.balance_cents),
        Figure("cash change (cents)", cents(cash_books), cents(cash_ex)),
        Figure("P&L booked (cents)", pnl_books, "-"),
        Figure("fees ($)", fees_books, fees_ex),
    ]
    if cents(cash_books) != cents(cash_ex):
        r.add("cash", f"rec booked {cents(cash_books)} cents of cash change, the exchange's "
              f"record moved {cents(cash_ex)}", cents(cash_books) - cents(cash_ex))
    if fees_books != fees_ex:
        r.add("fees", f"rec booked ${fees_books} of fees, the exchange charged ${fees_ex}",
              cents(fees_books - fees_ex))
    if books.balance_cents != ex.balance_cents:
        r.add("balance", f"rec-account-sync holds a balance of {books.balance_cents} cents, "
              f"the exchange {ex.balance_cents}",
              None if books.balance_cents is None else books.balance_cents - ex.balance_cents)
    return r


def owning_leg(books: Books, order: Order) -> Leg | None:
    """The leg that owns an exchange order: by its client_order_id, else (an order made
    without one, adopted as ``unowned``) by the exchange order id the leg names."""
    by_coid, by_oid = books.leg_index
    return by_coid.get(order.client_order_id or "") or by_oid.get(order.order_id)


def _orders(r: LedgerResult, books: Books, orders: list[Order]) -> dict[str, Order]:
    legs = books.leg_index[0]
    by_coid: dict[str, Order] = {}
    counts = Counter(o.client_order_id for o in orders if o.client_order_id)
    for o in orders:
        coid = o.client_order_id or ""
        if counts[coid] > 1 and coid not in by_coid:
            r.add("duplicate_order", f"{counts[coid]} exchange orders carry "
                  f"client_order_id {coid}", client_order_id=coid, order_id=o.order_id)
        if coid:
            by_coid.setdefault(coid, o)
        else:
            by_coid.setdefault(f"order:{o.order_id}", o)
        leg = owning_leg(books, o)
        if leg is None:
            r.add("order_without_leg", f"exchange order {o.order_id} ({coid or 'no id'}, "
                  f"{o.ticker}, filled {o.fill_count_fp}) is no leg of rec's",
                  client_order_id=coid, order_id=o.order_id)
        elif leg.state in GAVE_UP:
            r.add("leg_state", f"leg {coid} of trade {leg.trade_id} is {leg.state} but the "
                  f"exchange holds order {o.order_id} ({o.status}, filled {o.fill_count_fp})",
                  client_order_id=coid, trade_id=leg.trade_id, order_id=o.order_id)
        elif leg.exchange_order_id not in (None, o.order_id):
            r.add("order_id", f"leg {coid} names order {leg.exchange_order_id}, the exchange "
                  f"{o.order_id}", client_order_id=coid, trade_id=leg.trade_id)
    order_ids = {o.order_id for o in orders}
    for coid, leg in legs.items():
        if leg.state in SENT and coid not in by_coid and leg.exchange_order_id not in order_ids:
            r.add("leg_without_order", f"leg {coid} of trade {leg.trade_id} is {leg.state} "
                  f"but the exchange has no such order", client_order_id=coid,
                  trade_id=leg.trade_id)
    return by_coid


def _fills(r: LedgerResult, books: Books, ex: ExchangeRecord,
           owner: dict[str, Leg | None]) -> None:
    mirror = {(f.trade_id, f.order_id): f for f in books.fills}
    seen = set()
    for f in ex.fills:
        key = (f.trade_id, f.order_id)
        seen.add(key)
        fee = f.fee_cost or ZERO
        leg = owner.get(f.order_id)
        ticker = f.market_ticker or f.ticker
        if leg is None:
            r.add("unowned_fill", f"fill {f.trade_id} ({f.count_fp} on {ticker}, order "
                  f"{f.order_id}) belongs to no leg of rec's",
                  -cents(f.count_fp * fill_price(f, f.outcome_side) + fee),
                  fill=f.trade_id, order_id=f.order_id)
        m = mirror.get(key)
        if m is None:
            r.add("fill_missing", f"fill {f.trade_id} (order {f.order_id}, {f.count_fp} at "
                  f"${f.yes_price_dollars} YES, fee ${fee}) is in the exchange's record, not "
                  f"in rec's", -cents(fee), fill=f.trade_id, order_id=f.order_id,
                  trade_id=leg.trade_id if leg else None)
        elif (m.count, m.yes_price, m.fee) != (f.count_fp, f.yes_price_dollars, fee):
            r.add("fill_differs", f"fill {f.trade_id}: rec holds {m.count} at ${m.yes_price} "
                  f"fee ${m.fee}, the exchange {f.count_fp} at ${f.yes_price_dollars} fee "
                  f"${fee}", cents(m.fee - fee), fill=f.trade_id, order_id=f.order_id)
    for key, m in mirror.items():
        if key not in seen:
            r.add("fill_extra", f"fill {m.trade_id} (order {m.order_id}) is in rec's books, "
                  f"not in the exchange's record", cents(m.fee), fill=m.trade_id,
                  order_id=m.order_id)


def _trade_money(fills: list[Fill], owner: dict[str, Leg | None]) -> dict[int, _TradeMoney]:
    """Per trade, what the exchange's fills of its legs bought, sold and charged."""
    out: dict[int, _TradeMoney] = defaultdict(_TradeMoney)
    for f in fills:
        leg = owner.get(f.order_id)
        if leg is None:
            continue
        m = out[leg.trade_id]
        value = f.count_fp * fill_price(f, leg.side)
        if leg.action == "buy":
            m.bought += f.count_fp
            m.cost += value
        else:
            m.sold += f.count_fp
            m.proceeds += value
        m.fees += f.fee_cost or ZERO
        m.fills += 1
    return out


def _trades(r: LedgerResult, books: Books, ex: ExchangeRecord,
            money: dict[int, _TradeMoney]) -> None:
    settled = {s.ticker: s.market_result for s in ex.settlements}
    for t in books.trades:
        m = money.get(t.id, _TradeMoney())
        result = settled.get(t.ticker)
        held = m.bought - m.sold
        revenue = held if result == t.side else ZERO
        if t.fees != m.fees:
            r.add("trade_fees", f"trade {t.id} booked ${t.fees} of fees, its fills at the "
                  f"exchange ${m.fees}", cents(t.fees - m.fees), trade_id=t.id)
        if m.bought and t.entry_cost is None:
            r.add("trade_fills_unbooked", f"trade {t.id} ({t.status}) booked no entry, the "
                  f"exchange filled {m.bought} contracts of its legs for ${m.cost}",
                  cents(m.cost), trade_id=t.id)
        elif t.entry_cost is not None and t.entry_cost != m.cost:
            r.add("trade_entry", f"trade {t.id} booked an entry cost of ${t.entry_cost}, its "
                  f"fills at the exchange ${m.cost}", cents(m.cost - t.entry_cost),
                  trade_id=t.id)
        if t.pnl_cents is not None:
            pnl = cents(m.proceeds + revenue - m.cost - m.fees)
            if t.pnl_cents != pnl:
                r.add("trade_pnl", f"trade {t.id} booked a P&L of {t.pnl_cents} cents, its "
                      f"fills and settlement at the exchange make {pnl}",
                      t.pnl_cents - pnl, trade_id=t.id)
        if result is not None and held and (t.status in UNFINISHED or t.pnl_cents is None):
            r.add("trade_unfinished", f"trade {t.id} is {t.status} without P&L, but the "
                  f"exchange settled {t.ticker} ({result}) with {held} of its contracts",
                  trade_id=t.id)


def _positions(r: LedgerResult, books: Books, ex: ExchangeRecord) -> None:
    at_exchange = {p.ticker: p.position_fp for p in ex.positions if p.position_fp}
    in_trades: dict[str, Decimal] = defaultdict(Decimal)
    for t in books.trades:
        if t.status in HOLDING or (t.status == "expired" and t.entry_cost is not None
                                   and t.market_result is None and t.pnl_cents is None):
            in_trades[t.ticker] += t.quantity if t.side == "yes" else -t.quantity
    mirror = {k: v for k, v in books.positions.items() if v}
    for ticker in sorted(set(at_exchange) | {k for k, v in in_trades.items() if v}):
        want = at_exchange.get(ticker, ZERO)
        if in_trades.get(ticker, ZERO) != want:
            r.add("position_trades", f"{ticker}: rec's open trades hold "
                  f"{in_trades.get(ticker, ZERO)} (+YES/-NO), the exchange {want}",
                  ticker=ticker)
    for ticker in sorted(set(at_exchange) | set(mirror)):
        if mirror.get(ticker, ZERO) != at_exchange.get(ticker, ZERO):
            r.add("position_mirror", f"{ticker}: rec-account-sync holds "
                  f"{mirror.get(ticker, ZERO)}, the exchange {at_exchange.get(ticker, ZERO)}",
                  ticker=ticker)


def _settlements(r: LedgerResult, books: Books, ex: ExchangeRecord) -> None:
    at_exchange = {s.ticker: (s.market_result, s.revenue) for s in ex.settlements}
    for ticker in sorted(set(at_exchange) | set(books.settlements)):
        mine, theirs = books.settlements.get(ticker), at_exchange.get(ticker)
        if mine != theirs:
            r.add("settlement", f"{ticker}: rec-account-sync holds {mine or 'nothing'}, the "
                  f"exchange {theirs or 'nothing'} (result, revenue cents)",
                  None if mine is None or theirs is None else mine[1] - theirs[1],
                  ticker=ticker)
