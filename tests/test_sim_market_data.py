"""Market data on the simulator: series, events, markets with filters and cursor
pagination, a market, its order book by depth, public trades."""

from __future__ import annotations

from decimal import Decimal

from tests import test_sim_fixtures as fx

sim = fx.sim


async def _all_pages(c, path: str, key: str, **params) -> tuple[list[dict], int]:
    out, pages, cursor = [], 0, None
    while True:
        q = {**params, **({"cursor": cursor} if cursor else {})}
        r = await c.get(path, params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        out.extend(body[key])
        pages += 1
        cursor = body["cursor"]
        if not cursor:
            return out, pages


async def test_markets_paginate_with_cursor_and_filter(sim):
    c = sim.client(auth=False)
    everything = (await c.get("/markets", params={"limit": 1000})).json()
    assert everything["cursor"] == ""
    total = len(everything["markets"])
    assert total == 64  # two hours x (11 BTC strikes + 10 ranges + 11 ETH strikes)
    paged, pages = await _all_pages(c, "/markets", "markets", limit=5)
    assert pages == 13
    assert [m["ticker"] for m in paged] == [m["ticker"] for m in everything["markets"]]
    open_, _ = await _all_pages(c, "/markets", "markets", status="open", limit=7)
    assert len(open_) == 32 and {m["status"] for m in open_} == {"active"}
    unopened = (await c.get("/markets", params={"status": "unopened"})).json()["markets"]
    assert len(unopened) == 32 and {m["status"] for m in unopened} == {"initialized"}
    ranges = (await c.get("/markets", params={"series_ticker": "KXBTC"})).json()["markets"]
    assert len(ranges) == 20 and all(m["strike_type"] == "between" for m in ranges)
    ev = open_[0]["event_ticker"]
    by_event = (await c.get("/markets", params={"event_ticker": ev})).json()["markets"]
    assert {m["event_ticker"] for m in by_event} == {ev} and len(by_event) == 11
    pick = [open_[1]["ticker"], open_[3]["ticker"]]
    got = (await c.get("/markets", params={"tickers": ",".join(pick)})).json()["markets"]
    assert sorted(m["ticker"] for m in got) == sorted(pick)
    assert (await c.get("/markets", params={"status": "bogus"})).status_code == 400
    assert (await c.get("/markets", params={"limit": 5000})).status_code == 400
    assert (await c.get("/markets", params={"cursor": "%%%"})).status_code == 400


async def test_market_fields_are_fixed_point_strings(sim):
    c = sim.client(auth=False)
    t = sim.open_tickers()[5]
    m = (await c.get(f"/markets/{t}")).json()["market"]
    assert m["ticker"] == t and m["status"] == "active" and m["market_type"] == "binary"
    for k in ("yes_bid_dollars", "yes_ask_dollars", "no_bid_dollars", "no_ask_dollars",
              "last_price_dollars", "notional_value_dollars"):
        assert isinstance(m[k], str) and len(m[k].split(".")[1]) == 4, k
    assert m["volume_fp"].endswith(".00") and m["floor_strike"] > 0
    bid, ask = float(m["yes_bid_dollars"]), float(m["yes_ask_dollars"])
    assert 0 < bid < ask < 1  # the market maker quotes both sides around fair value
    assert (await c.get("/markets/NOPE-1")).status_code == 404
    r = await c.get("/markets/NOPE-1")
    assert r.json()["code"] == "not_found"


async def test_orderbook_depth(sim):
    c = sim.client()
    t = sim.open_tickers()[5]
    full = (await c.get(f"/markets/{t}/orderbook")).json()["orderbook_fp"]
    assert len(full["yes_dollars"]) == 5 and len(full["no_dollars"]) == 5
    two = (await c.get(f"/markets/{t}/orderbook", params={"depth": 2})).json()["orderbook_fp"]
    assert two["yes_dollars"] == full["yes_dollars"][-2:]  # the best two, ascending
    prices = [float(p) for p, _ in full["yes_dollars"]]
    assert prices == sorted(prices)
    best_yes = float(full["yes_dollars"][-1][0])
    best_no = float(full["no_dollars"][-1][0])
    assert best_yes + best_no < 1  # not crossed
    # the spec lists no 400 here: above 100 reads as 100 (this book has fewer levels)
    r = await c.get(f"/markets/{t}/orderbook", params={"depth": 101})
    assert r.status_code == 200 and r.json()["orderbook_fp"] == full


async def test_series_events_and_nested_markets(sim):
    c = sim.client(auth=False)
    series = (await c.get("/series")).json()["series"]
    assert {s["ticker"] for s in series} == {"KXBTCD", "KXBTC", "KXETHD"}
    s = (await c.get("/series/KXBTCD")).json()["series"]
    assert s["fee_type"] == "quadratic" and s["fee_multiplier"] == 1.0
    assert (await c.get("/series/NOPE")).status_code == 404
    evs, pages = await _all_pages(c, "/events", "events", limit=1)
    assert len(evs) == 6 and pages == 6
    open_ev = (await c.get("/events", params={"status": "open", "series_ticker": "KXBTC",
                                               "with_nested_markets": "true"})).json()["events"]
    assert len(open_ev) == 1 and len(open_ev[0]["markets"]) == 10
    one = (await c.get(f"/events/{open_ev[0]['event_ticker']}")).json()
    assert "markets" not in one["event"] and len(one["markets"]) == 10
    assert (await c.get("/events/NOPE")).status_code == 404


async def test_public_trades_paginate_newest_first(sim):
    await sim.control("advance", seconds=600)  # noise takers trade against the market maker
    c = sim.client(auth=False)
    first = (await c.get("/markets/trades", params={"limit": 1000})).json()["trades"]
    assert len(first) > 20
    paged, _ = await _all_pages(c, "/markets/trades", "trades", limit=7)
    assert [t["trade_id"] for t in paged] == [t["trade_id"] for t in first]
    times = [t["created_time"] for t in first]
    assert times == sorted(times, reverse=True)
    t0 = first[0]["ticker"]
    only = (await c.get("/markets/trades", params={"ticker": t0})).json()["trades"]
    assert only and {t["ticker"] for t in only} == {t0}
    for t in first[:5]:
        yes, no = Decimal(t["yes_price_dollars"]), Decimal(t["no_price_dollars"])
        assert yes + no == 1
