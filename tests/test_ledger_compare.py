"""app.ledger.compare on records built by hand: the exchange's cash rule (YES+NO pairs pay
$1 at once, settlements their revenue, fees apart) and each kind of difference the ledger
check must name - the ones the chaos soak found in the books (issue 20) among them."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from app.kalshi.models import Fill, MarketPosition, Order, Settlement
from app.ledger import compare as lc
from app.ledger import report
from app.ledger.records import Books, ExchangeRecord, Leg, MirrorFill, Trade

T = "KXBTCD-25NOV2517-T100000"


def order(coid: str, oid: str, filled: str = "2") -> Order:
    return Order.model_validate({"order_id": oid, "client_order_id": coid, "ticker": T,
                                 "outcome_side": "yes", "book_side": "bid",
                                 "status": "executed", "fill_count_fp": filled})


def fill(fid: str, oid: str, outcome: str, yes_price: str, count: str = "2",
         fee: str = "0.0300", at: str = "2025-11-25T16:00:00Z") -> Fill:
    return Fill.model_validate({
        "trade_id": fid, "order_id": oid, "market_ticker": T, "outcome_side": outcome,
        "book_side": "bid" if outcome == "yes" else "ask", "count_fp": count,
        "yes_price_dollars": yes_price, "no_price_dollars": str(1 - D(yes_price)),
        "fee_cost": fee, "created_time": at})


def equal_books() -> tuple[Books, ExchangeRecord]:
    """Trade 1: bought 2 YES at $0.40, sold them at $0.50, 3 cents of fees each way."""
    fills = [fill("f1", "o1", "yes", "0.40"),
             fill("f2", "o2", "no", "0.50", at="2025-11-25T16:05:00Z")]
    ex = ExchangeRecord([order("rec-a-1-open", "o1"), order("rec-a-1-close1", "o2")], fills,
                        [MarketPosition.model_validate({"ticker": T, "position_fp": "0"})],
                        [], 10_000)
    legs = [Leg("rec-a-1-open", 1, "open", T, "yes", "buy", D(2), "accepted", "o1"),
            Leg("rec-a-1-close1", 1, "close1", T, "yes", "sell", D(2), "accepted", "o2")]
    trades = [Trade(1, T, "yes", "closed", D(2), D("0.80"), D("1.00"), D("0.06"), 14, None)]
    mirror = [MirrorFill(f.trade_id, f.order_id, f.count_fp, f.yes_price_dollars, f.fee_cost)
              for f in fills]
    return Books(legs, trades, mirror, {}, {}, 10_000), ex


def kinds(r: lc.LedgerResult) -> list[tuple[str, object, int | None]]:
    return [(d.kind, d.ids.get("trade_id", d.ids.get("client_order_id")), d.cents)
            for d in r.differences]


def test_exchange_cash_nets_yes_no_pairs_and_adds_settlement_revenue():
    fills = [fill("a", "o1", "yes", "0.40"),  # -0.80 - 0.03
             fill("b", "o2", "no", "0.45", count="1", fee="0.0100",  # -0.55 + 1 pair - 0.01
                  at="2025-11-25T16:10:00Z")]
    settled = [Settlement.model_validate({"ticker": T, "market_result": "yes",
                                          "yes_count_fp": "1", "revenue": 100})]
    assert lc.exchange_cash(fills, []) == D("-0.39")
    assert lc.exchange_cash(fills, settled) == D("0.61")


def test_books_equal_to_the_exchange_have_no_difference():
    books, ex = equal_books()
    r = lc.compare(books, ex)
    assert r.equal, kinds(r)
    assert "the books equal the exchange" in report.side_by_side(r)
    assert report.to_dict(r)["figures"]["cash change (cents)"] == {"books": 14,
                                                                   "exchange": 14}


def test_a_filled_order_whose_leg_was_written_rejected_is_named():
    # issue 20 cause 2: the answer lost, a later 4xx, the leg written rejected, the trade
    # rejected - while the exchange holds the order and its fill
    books, ex = equal_books()
    books.legs = [replace(books.legs[0], state="rejected", exchange_order_id=None)]
    books.trades = [replace(books.trades[0], status="rejected", quantity=D(2), entry_cost=None,
                            exit_proceeds=None, fees=D(0), pnl_cents=None)]
    ex.orders, ex.fills = ex.orders[:1], ex.fills[:1]
    books.fills = books.fills[:1]
    got = kinds(lc.compare(books, ex))
    assert ("leg_state", 1, None) in got
    assert ("trade_fills_unbooked", 1, 80) in got
    assert ("trade_fees", 1, -3) in got
    assert ("cash", None, 83) in got


def test_orders_duplicated_unowned_or_missing_are_named():
    books, ex = equal_books()
    stray = order("rec-a-9-open", "o9")
    ex.orders += [order("rec-a-1-open", "o3"), stray]
    ex.fills.append(fill("f9", "o9", "yes", "0.30", fee="0"))
    books.legs.append(Leg("rec-a-2-open", 2, "open", T, "yes", "buy", D(1), "accepted", "o7"))
    got = kinds(lc.compare(books, ex))
    assert ("duplicate_order", "rec-a-1-open", None) in got
    assert ("order_without_leg", "rec-a-9-open", None) in got
    assert ("leg_without_order", 2, None) in got
    assert ("unowned_fill", None, -60) in got and ("fill_missing", None, 0) in got


def test_a_trade_left_open_on_a_settled_market_is_named():
    # issue 20 cause 1: the market closed while the feed was down, the trade stays open
    books, ex = equal_books()
    ex.orders, ex.fills, books.fills, books.legs = (ex.orders[:1], ex.fills[:1],
                                                    books.fills[:1], books.legs[:1])
    ex.settlements = [Settlement.model_validate({"ticker": T, "market_result": "yes",
                                                 "yes_count_fp": "2", "revenue": 200})]
    books.settlements = {T: ("yes", 200)}
    books.trades = [replace(books.trades[0], status="open", exit_proceeds=None,
                            fees=D("0.03"), pnl_cents=None)]
    got = kinds(lc.compare(books, ex))
    assert ("trade_unfinished", 1, None) in got
    assert ("cash", None, -200) in got
    assert [k for k in got if k[0] == "position_trades"]


def test_a_difference_in_flight_between_two_reads_is_not_reported_one_that_stays_is():
    # a fill the exchange had and rec-account-sync's mirror had not written yet, and a balance
    # read a moment before it: gone by the second comparison. A changed P&L stays.
    books, ex = equal_books()
    in_flight = replace(books, fills=books.fills[:1], balance_cents=10_003)
    damaged = replace(books, trades=[replace(books.trades[0], pnl_cents=21)])
    first = lc.compare(in_flight, ex)
    assert {d.kind for d in first.differences} >= {"fill_missing", "balance"}, kinds(first)
    assert lc.persisting(first, lc.compare(books, ex)).equal
    both = lc.compare(replace(damaged, fills=books.fills[:1]), ex)
    kept = lc.persisting(both, lc.compare(damaged, ex))
    assert sorted(kinds(kept)) == [("cash", None, 7), ("trade_pnl", 1, 7)], kinds(kept)
    # a difference first seen in the second comparison waits for the next run
    assert lc.persisting(lc.compare(books, ex), lc.compare(damaged, ex)).equal


async def test_confirmed_compares_again_only_when_the_first_comparison_differs():
    from app.ledger.standing import confirmed
    books, ex = equal_books()
    results = [lc.compare(replace(books, balance_cents=None), ex), lc.compare(books, ex)]
    calls: list[int] = []

    async def comparison() -> lc.LedgerResult:
        calls.append(1)
        return results[len(calls) - 1]

    assert (await confirmed(comparison, wait=0)).equal and len(calls) == 2
    calls.clear()
    results.reverse()  # equal first: one comparison is enough
    assert (await confirmed(comparison, wait=0)).equal and len(calls) == 1


async def test_the_standing_run_waits_for_the_mirror_and_stores_nothing_before_it():
    # the CI run of README command 1 (issue 21) failed on this: rec-trade-manager's first
    # comparison ran before rec-account-sync had stored a balance, and /api/health said
    # "1 difference (balance)" on a fresh install
    import logging

    from app.ledger import standing

    books, ex = equal_books()
    ledger = standing.StandingLedger(None, None, 60, logging.getLogger("t"), None)
    snapshots = [replace(books, balance_cents=None)]

    async def compare():
        return lc.compare(snapshots[-1], ex), snapshots[-1], ex

    ledger.compare = compare
    with pytest.raises(standing.MirrorNotReady):
        await ledger.run()
    assert ledger.runs == 0 and ledger.last is None
