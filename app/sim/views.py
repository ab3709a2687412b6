"""Render simulator state as Kalshi v2 wire objects (REST bodies and WS `msg` payloads)."""

from __future__ import annotations

from app.sim.accounts import Account, FillRecord, Position, SettlementRecord
from app.sim.market import Event, Market, Series
from app.sim.matching import NO, YES, Book, LevelChange, Order
from app.sim.money import CENT, ONE
from app.sim.venue import TradeRecord
from app.sim.wire import dollars, fp, iso, iso_s

SETTLEMENT_SOURCES = [{"name": "Simulated BTC index", "url": "http://127.0.0.1/"}]


def series_dict(s: Series) -> dict:
    return {
        "ticker": s.ticker,
        "frequency": s.frequency,
        "title": s.title,
        "category": s.category,
        "tags": list(s.tags),
        "settlement_sources": SETTLEMENT_SOURCES,
        "contract_url": "",
        "contract_terms_url": "",
        "fee_type": s.fee_type,
        "fee_multiplier": s.fee_multiplier,
        "additional_prohibitions": [],
        "categories": [s.category],
        "exchange_index": 0,
        "last_updated_ts": iso(s.created_ms),
    }


def event_dict(e: Event, markets: list[dict] | None = None) -> dict:
    d = {
        "event_ticker": e.event_ticker,
        "series_ticker": e.series_ticker,
        "sub_title": e.sub_title,
        "title": e.title,
        "collateral_return_type": "",
        "mutually_exclusive": e.mutually_exclusive,
        "product_metadata": None,
        "settlement_sources": SETTLEMENT_SOURCES,
        "exchange_index": 0,
        "category": "Crypto",
        "strike_date": iso(e.strike_ms),
        "last_updated_ts": iso(e.created_ms),
    }
    if markets is not None:
        d["markets"] = markets
    return d


def _book_side(outcome: str) -> str:
    """V2 book vocabulary: positioned for YES = bid, for NO = ask."""
    return "bid" if outcome == YES else "ask"


def top(book: Book | None) -> tuple[int, int, int, int]:
    """(yes_bid, yes_bid_size, yes_ask, yes_ask_size); no bid -> 0, no ask -> $1."""
    if book is None:
        return 0, 0, ONE, 0
    yb, nb = book.best(YES), book.best(NO)
    return (yb, book.size(YES, yb) if yb else 0, ONE - nb if nb else ONE,
            book.size(NO, nb) if nb else 0)


def price_ranges(m: Market) -> list[dict]:
    return [{"start": dollars(a), "end": dollars(b), "step": dollars(st)}
            for a, b, st in m.price_ranges]


def market_dict(m: Market, book: Book | None) -> dict:
    yb, ybs, ya, yas = top(book)
    d = {
        "ticker": m.ticker,
        "event_ticker": m.event_ticker,
        "market_type": "binary",
        "title": m.title,
        "subtitle": m.yes_sub_title,
        "yes_sub_title": m.yes_sub_title,
        "no_sub_title": m.no_sub_title,
        "created_time": iso(m.created_ms),
        "updated_time": iso(m.updated_ms or m.created_ms),
        "open_time": iso(m.open_ms),
        "close_time": iso(m.close_ms),
        "expected_expiration_time": iso(m.close_ms),
        "expiration_time": iso(m.close_ms),
        "latest_expiration_time": iso(m.close_ms + 7 * 86_400_000),
        "settlement_timer_seconds": 60,
        "status": m.status,
        "notional_value_dollars": "1.0000",
        "yes_bid_dollars": dollars(yb),
        "yes_ask_dollars": dollars(ya),
        "no_bid_dollars": dollars(ONE - ya),
        "no_ask_dollars": dollars(ONE - yb),
        "yes_bid_size_fp": fp(ybs),
        "yes_ask_size_fp": fp(yas),
        "last_price_dollars": dollars(m.last_price),
        "previous_yes_bid_dollars": dollars(m.previous[0] if m.previous else 0),
        "previous_yes_ask_dollars": dollars(m.previous[1] if m.previous else 0),
        "previous_price_dollars": dollars(m.previous[2] if m.previous else 0),
        "volume_fp": fp(m.volume),
        "volume_24h_fp": fp(m.volume),
        "open_interest_fp": fp(m.open_interest),
        "result": m.result,
        "can_close_early": False,
        "expiration_value": m.expiration_value,
        "rules_primary": rules_primary(m),
        "rules_secondary": "Simulated market: the simulator's own index path, published on "
                           "cfbenchmarks_value, averaged over the 60 seconds before close.",
        "price_level_structure": m.price_level_structure,
        "price_ranges": price_ranges(m),
        "settlement_bounds_type": "default",
        "exchange_index": 0,
        "strike_type": m.strike_type,
    }
    if m.floor_strike is not None:
        d["floor_strike"] = m.floor_strike
    if m.cap_strike is not None:
        d["cap_strike"] = m.cap_strike
    if m.settlement_value is not None:
        d["settlement_value_dollars"] = dollars(m.settlement_value)
    if m.settled_ms is not None:
        d["settlement_ts"] = iso(m.settled_ms)
    return d


INDEX_NAMES = {"BRTI": "CF Benchmarks' Bitcoin Real-Time Index (BRTI)",
               "ETHUSD_RTI": "CF Benchmarks' Ether-Dollar Real-Time Index (ETHUSD_RTI)"}


def rules_primary(m: Market) -> str:
    """Kalshi's wording for the crypto hourlies: the settlement value is the simple average
    of the index's sixty seconds before close (the simulator publishes the same index)."""
    if m.strike_type == "greater":
        cond = f"above ${m.floor_strike:,.2f}"
    else:
        cond = f"between ${m.floor_strike:,.2f} and ${m.cap_strike:,.2f}"
    index = INDEX_NAMES.get(m.index_id, m.index_id)
    return (f"If the simple average of the sixty seconds of {index} before "
            f"{iso(m.close_ms)} is {cond}, then the market resolves to Yes.")


def levels(book: Book, outcome: str, depth: int = 0) -> list[list[str]]:
    """Kalshi lists levels ascending by price: [["0.4500", "12.00"], ...]."""
    lv = book.depth(outcome, depth)
    return [[dollars(p), fp(q)] for p, q in reversed(lv)]


def orderbook_dict(book: Book, depth: int) -> dict:
    return {"orderbook_fp": {"yes_dollars": levels(book, YES, depth),
                             "no_dollars": levels(book, NO, depth)}}


def trade_dict(t: TradeRecord) -> dict:
    return {
        "trade_id": t.trade_id,
        "ticker": t.ticker,
        "count_fp": fp(t.count),
        "yes_price_dollars": dollars(t.yes_price),
        "no_price_dollars": dollars(ONE - t.yes_price),
        "taker_side": t.taker_outcome,
        "taker_outcome_side": t.taker_outcome,
        "taker_book_side": _book_side(t.taker_outcome),
        "is_block_trade": False,
        "created_time": iso(t.ts_ms),
    }


def order_dict(o: Order, acct: Account) -> dict:
    return {
        "order_id": o.order_id,
        "user_id": acct.user_id,
        "client_order_id": o.client_order_id,
        "ticker": o.ticker,
        "side": o.side,
        "action": o.action,
        "outcome_side": o.outcome,
        "book_side": _book_side(o.outcome),
        "type": "limit",
        "status": o.status,
        "yes_price_dollars": dollars(o.yes_price),
        "no_price_dollars": dollars(ONE - o.yes_price),
        "fill_count_fp": fp(o.filled),
        "remaining_count_fp": fp(o.remaining),
        "initial_count_fp": fp(o.initial_count),
        "taker_fees_dollars": dollars(o.taker_fees),
        "maker_fees_dollars": dollars(o.maker_fees),
        "taker_fill_cost_dollars": dollars(o.taker_cost),
        "maker_fill_cost_dollars": dollars(o.maker_cost),
        "expiration_time": iso(o.expiration_ms) if o.expiration_ms else None,
        "created_time": iso(o.created_ms),
        "last_update_time": iso(o.updated_ms),
        "self_trade_prevention_type": o.stp,
        "order_group_id": o.order_group_id,
        "cancel_order_on_pause": o.cancel_on_pause,
        "subaccount_number": 0,
        "exchange_index": 0,
    }


def fill_dict(f: FillRecord) -> dict:
    return {
        "fill_id": f.fill_id,
        "trade_id": f.fill_id,
        "order_id": f.order_id,
        "ticker": f.ticker,
        "market_ticker": f.ticker,
        "side": f.side,
        "action": f.action,
        "outcome_side": f.outcome,
        "book_side": _book_side(f.outcome),
        "exchange_index": 0,
        "count_fp": fp(f.count),
        "yes_price_dollars": dollars(f.yes_price),
        "no_price_dollars": dollars(ONE - f.yes_price),
        "is_taker": f.is_taker,
        "fee_cost": dollars(f.fee),
        "created_time": iso(f.ts_ms),
        "ts": f.ts_ms // 1000,
        "subaccount_number": 0,
    }


def position_dict(p: Position, resting: int) -> dict:
    return {
        "ticker": p.ticker,
        "total_traded_dollars": dollars(p.total_traded),
        "position_fp": f"{p.position}.00",
        "market_exposure_dollars": dollars(p.cost),
        "realized_pnl_dollars": dollars(p.realized_pnl),
        "exchange_index": 0,
        "fees_paid_dollars": dollars(p.fees_paid),
        "last_updated_ts": iso(p.last_updated_ms),
    }


def event_position_dict(event_ticker: str, ps: list[Position]) -> dict:
    return {
        "event_ticker": event_ticker,
        "total_cost_dollars": dollars(sum(p.total_traded for p in ps)),
        "total_cost_shares_fp": fp(sum(p.volume for p in ps)),
        "event_exposure_dollars": dollars(sum(p.cost for p in ps)),
        "realized_pnl_dollars": dollars(sum(p.realized_pnl for p in ps)),
        "fees_paid_dollars": dollars(sum(p.fees_paid for p in ps)),
    }


def settlement_dict(s: SettlementRecord) -> dict:
    return {
        "ticker": s.ticker,
        "event_ticker": s.event_ticker,
        "market_result": s.result,
        "yes_count_fp": fp(s.yes_count),
        "yes_total_cost_dollars": dollars(s.yes_cost),
        "no_count_fp": fp(s.no_count),
        "no_total_cost_dollars": dollars(s.no_cost),
        "revenue": s.revenue // CENT,  # integer cents
        "value": s.value // CENT,
        "settled_time": iso(s.settled_ms),
        "fee_cost": dollars(s.fee_cost),
        "exchange_index": 0,
    }


# --- WebSocket msg payloads ----------------------------------------------------------

def ws_ticker(m: Market, book: Book, now_ms: int) -> dict:
    yb, ybs, ya, yas = top(book)
    return {
        "market_ticker": m.ticker,
        "market_id": m.market_id,
        "price_dollars": dollars(m.last_price),
        "yes_bid_dollars": dollars(yb),
        "yes_ask_dollars": dollars(ya),
        "yes_bid_size_fp": fp(ybs),
        "yes_ask_size_fp": fp(yas),
        "last_trade_size_fp": fp(m.last_trade_size),
        "volume_fp": fp(m.volume),
        "open_interest_fp": fp(m.open_interest),
        "dollar_volume": m.dollar_volume // ONE,
        "dollar_open_interest": m.open_interest * m.last_price // ONE,
        "ts": now_ms // 1000,
        "ts_ms": now_ms,
        "time": iso_s(now_ms // 1000),
    }


def ws_trade(t: TradeRecord) -> dict:
    return {
        "trade_id": t.trade_id,
        "market_ticker": t.ticker,
        "yes_price_dollars": dollars(t.yes_price),
        "no_price_dollars": dollars(ONE - t.yes_price),
        "count_fp": fp(t.count),
        "taker_side": t.taker_outcome,
        "taker_outcome_side": t.taker_outcome,
        "taker_book_side": "bid" if t.taker_outcome == YES else "ask",
        "is_block_trade": False,
        "ts": t.ts_ms // 1000,
        "ts_ms": t.ts_ms,
    }


def ws_snapshot(m: Market, book: Book) -> dict:
    msg: dict = {"market_ticker": m.ticker, "market_id": m.market_id}
    yes = levels(book, YES)
    no = levels(book, NO)
    if yes:
        msg["yes_dollars_fp"] = yes
    if no:
        msg["no_dollars_fp"] = no
    return msg


def ws_delta(m: Market, ch: LevelChange, now_ms: int) -> dict:
    return {
        "market_ticker": m.ticker,
        "market_id": m.market_id,
        "price_dollars": dollars(ch.price),
        "delta_fp": fp(ch.delta) if ch.delta >= 0 else f"-{fp(-ch.delta)}",
        "side": ch.outcome,
        "ts": iso_s(now_ms // 1000),
        "ts_ms": now_ms,
    }


def ws_fill(f: FillRecord) -> dict:
    return {
        "trade_id": f.fill_id,
        "order_id": f.order_id,
        "market_ticker": f.ticker,
        "exchange_index": 0,
        "is_taker": f.is_taker,
        "side": f.side,
        "purchased_side": f.outcome,
        "outcome_side": f.outcome,
        "book_side": "bid" if f.outcome == YES else "ask",
        "action": f.action,
        "yes_price_dollars": dollars(f.yes_price),
        "count_fp": fp(f.count),
        "fee_cost": dollars(f.fee),
        "post_position_fp": f"{f.post_position}.00",
        "client_order_id": f.client_order_id,
        "ts": f.ts_ms // 1000,
        "ts_ms": f.ts_ms,
    }


def ws_order(o: Order, acct: Account) -> dict:
    d = {
        "order_id": o.order_id,
        "user_id": acct.user_id,
        "ticker": o.ticker,
        "exchange_index": 0,
        "status": o.status,
        "side": o.side,
        "is_yes": o.outcome == YES,
        "outcome_side": o.outcome,
        "book_side": "bid" if o.outcome == YES else "ask",
        "yes_price_dollars": dollars(o.yes_price),
        "fill_count_fp": fp(o.filled),
        "remaining_count_fp": fp(o.remaining),
        "initial_count_fp": fp(o.initial_count),
        "taker_fill_cost_dollars": dollars(o.taker_cost, 6),
        "maker_fill_cost_dollars": dollars(o.maker_cost, 6),
        "taker_fees_dollars": dollars(o.taker_fees, 6),
        "maker_fees_dollars": dollars(o.maker_fees, 6),
        "client_order_id": o.client_order_id,
        "self_trade_prevention_type": o.stp,
        "created_time": iso(o.created_ms),
        "created_ts_ms": o.created_ms,
        "last_update_time": iso(o.updated_ms),
        "last_updated_ts_ms": o.updated_ms,
        "subaccount_number": 0,
    }
    if o.last_update_reason:
        d["last_update_reason"] = o.last_update_reason
    if o.expiration_ms:
        d["expiration_time"] = iso(o.expiration_ms)
        d["expiration_ts_ms"] = o.expiration_ms
    return d


def ws_position(acct: Account, p: Position) -> dict:
    return {
        "user_id": acct.user_id,
        "market_ticker": p.ticker,
        "position_fp": f"{p.position}.00",
        "position_cost_dollars": dollars(p.cost),
        "realized_pnl_dollars": dollars(p.realized_pnl),
        "fees_paid_dollars": dollars(p.fees_paid),
        "position_fee_cost_dollars": dollars(p.fees_paid),
        "volume_fp": fp(p.volume),
    }


__all__ = ["NO", "YES"]
