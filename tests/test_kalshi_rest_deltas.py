"""Kalshi API changes after v3.31.0 (3.32-3.36) in the REST client, against the small real HTTP
server of tests/kalshi_fake.py (signatures verified), taught the new calls here:

- ``GET /portfolio/positions`` by ``settlement_status`` (unsettled | settled | all; the cursor
  belongs to the status): the client always names the status it wants;
- ``GET /portfolio/fills`` takes up to 100 comma-separated tickers: the client batches;
- ``/historical/cutoff`` and ``/historical/orders``;
- an answer to an order write that carries no order is a rejection, never a success.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.kalshi.errors import KalshiHTTPError, KalshiRejected
from app.kalshi.rest import KalshiRest, order_body
from tests.kalshi_fake import PREFIX, _err, client, fake  # noqa: F401 - fixtures

STATUSES = ("unsettled", "settled", "all")


def _position(ticker: str) -> dict:
    return {"ticker": ticker, "position_fp": "3.00", "market_exposure_dollars": "1.5000"}


def _fill(n: int, ticker: str) -> dict:
    return {"trade_id": f"t{n}", "fill_id": f"f{n}", "order_id": f"o{n}", "ticker": ticker,
            "outcome_side": "yes", "book_side": "bid", "count_fp": "1.00",
            "yes_price_dollars": "0.5000"}


def _order(n: int) -> dict:
    return {"order_id": f"old{n}", "client_order_id": f"c{n}", "ticker": "KXOLD-1",
            "outcome_side": "yes", "book_side": "bid", "status": "executed",
            "yes_price_dollars": "0.4000", "fill_count_fp": "1.00", "remaining_count_fp": "0.00",
            "initial_count_fp": "1.00"}


class Deltas:
    """The new routes, in front of the fake exchange's own."""

    def __init__(self, state) -> None:
        self.route = state.route
        self.positions = {s: [_position(f"KX{s.upper()}-{i}") for i in range(5)]
                          for s in STATUSES}
        self.fills = [_fill(n, f"KXF-{n % 250}") for n in range(500)]
        self.write_answer: dict | None = None  # a 2xx body for order writes, when set

    @staticmethod
    def _page(rows: list, q: dict, key: str, tag: str = "") -> JSONResponse:
        """``limit`` rows from the cursor ``tag:offset``; a cursor of another tag is refused."""
        limit = int(q.get("limit", "2"))
        cursor = q.get("cursor", f"{tag}:0")
        got_tag, _, offset = cursor.partition(":")
        if got_tag != tag:
            return _err(400, "invalid_cursor", f"cursor {cursor} is not of {tag}")
        start = int(offset)
        nxt = start + limit
        return JSONResponse({key: rows[start:nxt],
                             "cursor": f"{tag}:{nxt}" if nxt < len(rows) else ""})

    async def __call__(self, request: Request) -> JSONResponse:
        path = request.url.path[len(PREFIX):]
        q = {k: v[-1] for k, v in parse_qs(request.url.query).items()}
        if path == "/portfolio/positions":
            status = q.get("settlement_status", "unsettled")
            return self._page(self.positions[status], q, "market_positions", status)
        if path == "/portfolio/fills":
            tickers = q["ticker"].split(",") if "ticker" in q else None
            if tickers is not None and len(tickers) > 100:
                return _err(400, "invalid_parameters", "at most 100 tickers")
            rows = [f for f in self.fills if tickers is None or f["ticker"] in tickers]
            return self._page(rows, {"limit": "100", **q}, "fills", q.get("ticker", ""))
        if path == "/historical/cutoff":
            return JSONResponse({"market_settled_ts": "2026-11-20T00:00:00Z",
                                 "trades_created_ts": "2026-11-21T00:00:00Z",
                                 "orders_updated_ts": "2026-11-22T00:00:00Z"})
        if path == "/historical/orders":
            return self._page([_order(n) for n in range(5)], q, "orders", "h")
        if self.write_answer is not None and request.method in ("POST", "DELETE"):
            return JSONResponse(self.write_answer, status_code=200)
        return await self.route(request)


@pytest.fixture
def deltas(fake):  # noqa: F811 - the fixture of kalshi_fake
    fake.route = Deltas(fake)
    return fake.route


def _queries(state, path: str) -> list[dict[str, str]]:
    """The query of every request the server saw for ``path``, in order."""
    hits = [p for _, p, _, _ in state.seen_auth]
    return [{k: v[-1] for k, v in parse_qs(q).items()}
            for p, q in zip(hits, state.seen_queries, strict=True) if p == path]


async def test_positions_are_asked_for_by_an_explicit_settlement_status(
        client, fake, deltas):  # noqa: F811
    page = await client.get_positions()
    assert [p.ticker for p in page.market_positions] == ["KXUNSETTLED-0", "KXUNSETTLED-1"]
    settled = [p.ticker async for p in client.iter_market_positions(settlement_status="settled")]
    assert settled == [f"KXSETTLED-{i}" for i in range(5)]  # every page, the cursor of its status
    everything = [p async for p in client.iter_market_positions(settlement_status="all")]
    assert len(everything) == 5
    sent = [q.get("settlement_status") for q in _queries(fake, PREFIX + "/portfolio/positions")]
    assert sent == ["unsettled"] + ["settled"] * 3 + ["all"] * 3
    with pytest.raises(ValueError, match="settlement_status"):
        await client.get_positions(settlement_status="open")


async def test_fills_of_many_tickers_are_asked_for_100_at_a_time(
        client, fake, deltas):  # noqa: F811
    tickers = [f"KXF-{n}" for n in range(250)]
    fills = [f.trade_id async for f in client.iter_fills(ticker=tickers)]
    assert sorted(fills) == sorted(f["trade_id"] for f in deltas.fills)  # each fill once
    asked = [q["ticker"] for q in _queries(fake, PREFIX + "/portfolio/fills")]
    # 2 fills a ticker, 100 a page: batches of 100 tickers take two pages, the last one
    assert [len(a.split(",")) for a in asked] == [100, 100, 100, 100, 50]
    batches = list(dict.fromkeys(asked))
    assert [t for b in batches for t in b.split(",")] == tickers
    with pytest.raises(ValueError, match="at most 100"):
        await client.get_fills(ticker=tickers[:101])
    one = await client.get_fills(ticker="KXF-7")
    assert {f.ticker for f in one.items} == {"KXF-7"}


async def test_orders_older_than_the_cutoff_are_read_from_history(client, deltas):  # noqa: F811
    cutoff = await client.get_historical_cutoff()
    assert cutoff.orders_updated_ts.isoformat() == "2026-11-22T00:00:00+00:00"
    assert cutoff.market_positions_last_updated_ts is None
    old = [o.order_id async for o in client.iter_historical_orders(ticker="KXOLD-1")]
    assert old == [f"old{n}" for n in range(5)]


DEPRECATED = {"error": {"code": "deprecated_v1_order_endpoint",
                        "message": "use /portfolio/events/orders", "service": "exchange"}}


async def test_an_order_write_answered_without_an_order_is_a_rejection(
        client, fake, deltas):  # noqa: F811
    """The 410 ``deprecated_v1_order_endpoint`` inside a 2xx body: no order was made."""
    deltas.write_answer = DEPRECATED
    with pytest.raises(KalshiRejected) as got:
        await client.create_order("KXBTCD-T1", "yes", "buy", 1, "0.56", client_order_id="r1")
    assert got.value.code == "deprecated_v1_order_endpoint"
    assert isinstance(got.value, KalshiHTTPError)  # callers' "rejected" branch
    with pytest.raises(KalshiRejected):
        await client.cancel_order("o1")
    with pytest.raises(KalshiRejected):
        await client.amend_order("o1", ticker="KXBTCD-T1", side="yes", action="buy",
                                 price="0.55", count=2)
    with pytest.raises(KalshiRejected):
        await client.decrease_order("o1", reduce_by=1)
    with pytest.raises(KalshiRejected):
        await client.batch_create_orders([order_body("KXBTCD-T1", "yes", "buy", 1, "0.56")])
    deltas.write_answer = {}  # an empty success
    with pytest.raises(KalshiRejected):
        await client.create_order("KXBTCD-T1", "yes", "buy", 1, "0.56", client_order_id="r2")
    # a batch item with neither an order nor an error is that item's rejection
    deltas.write_answer = {"orders": [{"client_order_id": "b1"}, {"order_id": "o9",
                                                                  "client_order_id": "b2"}]}
    items = await client.batch_create_orders([
        order_body("KXBTCD-T1", "yes", "buy", 1, "0.56", client_order_id="b1"),
        order_body("KXBTCD-T1", "yes", "buy", 1, "0.56", client_order_id="b2")])
    assert items[0].order_id is None and items[0].error.code == "no_order_in_answer"
    assert items[1].order_id == "o9" and items[1].error is None
    deltas.write_answer = {"orders": [{"reduced_by": "1.00"}, "?"]}
    cancels = await client.batch_cancel_orders(["o1", "o2"])
    assert [c.error.code for c in cancels] == ["no_order_in_answer"] * 2
    assert fake.count("POST", "/portfolio/events/orders") == 2  # never retried as a success


def test_the_client_class_keeps_every_area():
    """Callers use one class: the split by area changed none of its names."""
    for name in ("get_positions", "iter_fills", "get_historical_orders", "create_order",
                 "get_markets", "get_exchange_status", "create_order_group", "start",
                 "keep_presigned", "paginate", "request", "price_grid"):
        assert callable(getattr(KalshiRest, name)), name
