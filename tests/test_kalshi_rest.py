"""REST client against a small real HTTP server on loopback (uvicorn + Starlette).

The server checks every signature with app.kalshi.signing.verify, paginates with
cursors, and answers scripted 429/5xx/hangs so the retry policy is observed on
the wire: what the server saw is what the tests assert.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter
from decimal import Decimal
from typing import Any, ClassVar

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.kalshi import signing
from app.kalshi.errors import (
    KalshiAuthError,
    KalshiBadRequest,
    KalshiConflict,
    KalshiNotFound,
    KalshiRateLimited,
    KalshiServerError,
    KalshiTimeout,
    KalshiTransportError,
)
from app.kalshi.http import presign
from app.kalshi.prices import InvalidPrice
from app.kalshi.rest import (
    KalshiRest,
    LegacyOrderWrite,
    RetryPolicy,
    order_body,
    parse_retry_after,
)

PREFIX = "/trade-api/v2"
_KEY = signing.generate_private_key()
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=5)


def _market(i: int) -> dict:
    return {
        "ticker": f"KXBTCD-25NOV2517-T{97000 + i * 250}.99",
        "event_ticker": "KXBTCD-25NOV2517",
        "status": "active",
        "market_type": "binary",
        "yes_bid_dollars": "0.5600",
        "yes_ask_dollars": "0.5800",
        "no_bid_dollars": "0.4200",
        "no_ask_dollars": "0.4400",
        "last_price_dollars": "0.5700",
        "volume_fp": "1234.00",
        "open_interest_fp": "77.50",
        "floor_strike": 97000.99,
        "close_time": "2025-11-25T22:00:00Z",
        "settlement_bounds_type": "default",
        "price_level_structure": "linear_cent",
        "price_ranges": [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}],
        "exchange_index": 0,
    }


def _order(oid: str, body: dict) -> dict:
    price = Decimal(body["price"])
    return {
        "order_id": oid,
        "client_order_id": body["client_order_id"],
        "user_id": "u1",
        "ticker": body["ticker"],
        "outcome_side": "yes" if body["side"] == "bid" else "no",
        "book_side": body["side"],
        "side": "deprecated-do-not-read",
        "action": "deprecated-do-not-read",
        "type": "limit",
        "status": "resting",
        "yes_price_dollars": f"{price:.4f}",
        "no_price_dollars": f"{1 - price:.4f}",
        "fill_count_fp": "0.00",
        "remaining_count_fp": body["count"],
        "initial_count_fp": body["count"],
        "exchange_index": 0,
    }


class FakeKalshi:
    """State and fault script of the fake exchange."""

    def __init__(self) -> None:
        self.key = _KEY
        self.key_id = "test-key"
        self.public = {self.key_id: self.key.public_key()}
        self.hits: Counter[tuple[str, str]] = Counter()
        self.faults: dict[tuple[str, str], list[tuple[int, dict]]] = {}
        self.hang: dict[tuple[str, str], float] = {}
        self.accept_then_fail: set[str] = set()
        self.cancel_then_fail: set[str] = set()
        self.markets = [_market(i) for i in range(25)]
        self.orders: dict[str, dict] = {}
        self.seen_queries: list[str] = []
        self.seen_auth: list[tuple[str, str, int, str]] = []  # method, path, timestamp, signature
        self.structures: dict[str, tuple[str, list[dict]]] = {}
        # server-side token buckets (kind -> [tokens, stamp]) when limits are set
        self.limits: dict[str, tuple[int, int]] | None = None
        self.buckets: dict[str, list[float]] = {}
        self.refused = 0
        self.release = asyncio.Event()  # ends hanging requests at teardown

    def fault(self, method: str, path: str, *responses: tuple[int, dict]) -> None:
        self.faults[(method, PREFIX + path)] = list(responses)

    def count(self, method: str, path: str) -> int:
        return self.hits[(method, PREFIX + path)]

    # ----------------------------------------------------------- middleware-ish

    def check_auth(self, request: Request) -> JSONResponse | None:
        h = request.headers
        key_id = h.get(signing.HEADER_KEY)
        ts = h.get(signing.HEADER_TIMESTAMP)
        sig = h.get(signing.HEADER_SIGNATURE)
        pub = self.public.get(key_id or "")
        fresh = ts is not None and ts.isdigit() and abs(int(ts) - time.time() * 1000) < 5000
        if pub is None or not sig or not fresh:
            return _err(401, "authentication_error", "missing or unknown key / stale timestamp")
        if not signing.verify(pub, sig, ts, request.method, request.url.path):
            return _err(401, "authentication_error", "bad signature")
        return None

    async def handle(self, request: Request) -> JSONResponse:
        key = (request.method, request.url.path)
        self.hits[key] += 1
        self.seen_queries.append(request.url.query)
        h = request.headers
        if (h.get(signing.HEADER_TIMESTAMP) or "").isdigit():
            self.seen_auth.append((*key, int(h[signing.HEADER_TIMESTAMP]),
                                   h.get(signing.HEADER_SIGNATURE, "")))
        bad = self.check_auth(request)
        if bad is not None:
            return bad
        if key in self.hang:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), self.hang[key])
        if self.limits is not None and not self.take_tokens(request):
            self.refused += 1
            return _err(429, "too_many_requests", "token bucket empty")
        script = self.faults.get(key)
        if script:
            status, headers = script.pop(0)
            return _err(status, f"e{status}", "scripted fault", headers)
        return await self.route(request)

    def take_tokens(self, request: Request) -> bool:
        assert self.limits is not None
        kind = "read" if request.method == "GET" else "write"
        rate, capacity = self.limits[kind]
        cost = 2 if request.method == "DELETE" else 10
        now = time.monotonic()
        tokens, stamp = self.buckets.setdefault(kind, [float(capacity), now])
        tokens = min(capacity, tokens + (now - stamp) * rate)
        ok = tokens >= cost
        self.buckets[kind] = [tokens - cost if ok else tokens, now]
        return ok

    async def route(self, request: Request) -> JSONResponse:
        path = request.url.path[len(PREFIX) :]
        for method, matches, handler in self._ROUTES:
            if method in (None, request.method) and matches(path):
                return await handler(self, request, path)
        if path.endswith("/amend") or path.endswith("/decrease") or path.endswith("/batched"):
            return _err(400, "invalid_parameters", "not scripted")
        return _err(404, "not_found", f"no route {path}")

    async def r_status(self, request: Request, path: str) -> JSONResponse:
        return JSONResponse({"exchange_active": True, "trading_active": True})

    async def r_markets(self, request: Request, path: str) -> JSONResponse:
        q = request.query_params
        rows = self.markets
        if q.get("status"):
            rows = [m for m in rows if m["status"] == q["status"]]
        if q.get("tickers"):
            wanted = set(q["tickers"].split(","))
            rows = [m for m in rows if m["ticker"] in wanted]
        limit = int(q.get("limit") or 100)
        start = int(q.get("cursor") or 0)
        page = rows[start : start + limit]
        nxt = start + limit
        return JSONResponse({"markets": page, "cursor": str(nxt) if nxt < len(rows) else ""})

    async def r_orderbook(self, request: Request, path: str) -> JSONResponse:
        return JSONResponse(
            {
                "orderbook_fp": {
                    "yes_dollars": [["0.5600", "10.00"], ["0.5500", "2.50"]],
                    "no_dollars": [["0.4200", "7.00"]],
                }
            }
        )

    async def r_limits(self, request: Request, path: str) -> JSONResponse:
        limits = self.limits or {"read": (0, 0), "write": (0, 0)}
        body = {k: {"refill_rate": r, "bucket_capacity": c} for k, (r, c) in limits.items()}
        return JSONResponse({"usage_tier": "basic", "grants": [], **body})

    async def r_costs(self, request: Request, path: str) -> JSONResponse:
        return JSONResponse({"default_cost": 10, "endpoint_costs": [
            {"method": "DELETE", "path": "/trade-api/v2/portfolio/events/orders/{order_id}",
             "cost": 2}]})

    async def r_balance(self, request: Request, path: str) -> JSONResponse:
        return JSONResponse({"balance": 100000, "portfolio_value": 2500, "updated_ts": 1})

    async def r_market(self, request: Request, path: str) -> JSONResponse:
        ticker = path.rsplit("/", 1)[1]
        structure, ranges = self.structures.get(
            ticker, ("linear_cent", [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}])
        )
        market = {**_market(0), "ticker": ticker, "price_level_structure": structure,
                  "price_ranges": ranges}
        return JSONResponse({"market": market})

    async def r_legacy_write(self, request: Request, path: str) -> JSONResponse:
        if request.method == "GET":
            return await self.r_orders(request, path)
        return _err(410, "deprecated_v1_order_endpoint", "use /portfolio/events/orders")

    async def r_create(self, request: Request, path: str) -> JSONResponse:
        body = await request.json()
        required = ("ticker", "side", "count", "price", "time_in_force",
                    "self_trade_prevention_type")
        if any(k not in body for k in required) or body["side"] not in ("bid", "ask"):
            return _err(400, "invalid_parameters", f"bad V2 order body {body}")
        coid = body["client_order_id"]
        if coid in self.orders:
            return _err(409, "order_already_exists", "duplicate client_order_id")
        order = self.orders[coid] = _order(f"o{len(self.orders) + 1}", body)
        if coid in self.accept_then_fail:
            self.accept_then_fail.discard(coid)
            return _err(502, "bad_gateway", "accepted but the answer was lost")
        ack = {"order_id": order["order_id"], "client_order_id": coid,
               "fill_count": "0.00", "remaining_count": body["count"], "ts_ms": 1}
        return JSONResponse(ack, status_code=201)

    def _order_at(self, path: str) -> dict | None:
        oid = path.rsplit("/", 1)[1]
        return next((o for o in self.orders.values() if o["order_id"] == oid), None)

    async def r_orders(self, request: Request, path: str) -> JSONResponse:
        if path != "/portfolio/orders":  # one order
            order = self._order_at(path)
            if order is None:
                return _err(404, "not_found", "no such order")
            return JSONResponse({"order": order})
        ticker = request.query_params.get("ticker")
        rows = [o for o in self.orders.values() if o["ticker"] == (ticker or o["ticker"])]
        return JSONResponse({"orders": rows, "cursor": ""})

    async def r_cancel(self, request: Request, path: str) -> JSONResponse:
        order = self._order_at(path)
        if order is None or order["status"] == "canceled":
            return _err(404, "not_found", "order is not resting")
        reduced = order["remaining_count_fp"]
        order.update(status="canceled", remaining_count_fp="0.00")
        oid = order["order_id"]
        if oid in self.cancel_then_fail:
            self.cancel_then_fail.discard(oid)
            return _err(504, "gateway_timeout", "cancelled but the answer was lost")
        return JSONResponse({"order_id": oid, "client_order_id": order["client_order_id"],
                             "reduced_by": reduced, "ts_ms": 2})

    # method (None: any), path test, handler: the first that matches answers
    _ROUTES: ClassVar[list[tuple[str | None, Any, Any]]] = [
        (None, lambda p: p == "/exchange/status", r_status),
        (None, lambda p: p == "/markets", r_markets),
        (None, lambda p: p.startswith("/markets/") and p.endswith("/orderbook"), r_orderbook),
        (None, lambda p: p == "/account/limits", r_limits),
        (None, lambda p: p == "/account/endpoint_costs", r_costs),
        (None, lambda p: p == "/portfolio/balance", r_balance),
        (None, lambda p: p.startswith("/markets/") and p.count("/") == 2, r_market),
        (None, lambda p: p.startswith("/portfolio/orders"), r_legacy_write),
        ("POST", lambda p: p == "/portfolio/events/orders", r_create),
        ("DELETE", lambda p: p.startswith("/portfolio/events/orders/o"), r_cancel),
    ]


def _err(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "service": "fake"}},
        status_code=status,
        headers=headers or {},
    )


@pytest.fixture
async def fake():
    state = FakeKalshi()
    app = Starlette(
        routes=[
            Route(PREFIX + "/{rest:path}", state.handle, methods=["GET", "POST", "DELETE", "PUT"])
        ]
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
        await asyncio.sleep(0.01)
    state.base_url = f"http://127.0.0.1:{port}{PREFIX}"
    yield state
    state.release.set()
    server.should_exit = True
    await task
    sock.close()


@pytest.fixture
async def client(fake):
    c = KalshiRest(fake.base_url, signing.Signer(fake.key_id, fake.key), timeout=2, retry=FAST)
    yield c
    await c.aclose()


# ------------------------------------------------------------------ signing


async def test_signed_requests_are_accepted_by_a_verifying_server(client, fake):
    status = await client.get_exchange_status()
    assert status.exchange_active and status.trading_active
    # the signature covers the path only: a query string does not break it
    page = await client.get_markets(limit=3, status="active")
    assert len(page.items) == 3
    assert "limit=3" in fake.seen_queries[-1]


async def test_order_entry_headers_are_signed_ahead_used_once_and_never_stale(
        client, fake, monkeypatch):
    monkeypatch.setattr(presign, "PRESIGN_MAX_AGE_MS", 200)
    client.keep_presigned("POST", V2)
    calls = []

    async def order(i: int) -> None:
        calls.append(time.time() * 1000)
        await client.create_order("KXBTCD-T1", "yes", "buy", 1, Decimal("0.56"),
                                  client_order_id=f"pre-{i}")

    await asyncio.sleep(0.05)
    await order(1)  # the set signed by keep_presigned, 50 ms before
    await asyncio.sleep(0.02)
    await order(2)  # the set signed while order 1 was on the wire
    await asyncio.sleep(0.5)  # 2.5x the maximum age: renewed meanwhile, never sent stale
    await order(3)
    t_get = time.time() * 1000
    await client.get_balance()

    posts = [(ts, sig) for m, p, ts, sig in fake.seen_auth if m == "POST"]
    assert len(posts) == 3 and len(set(posts)) == 3 and len({s for _, s in posts}) == 3
    assert list(fake.orders) == ["pre-1", "pre-2", "pre-3"]  # every signature verified
    (ts1, _), (ts2, _), (ts3, _) = posts
    assert ts1 <= calls[0] - 40, "order 1 was signed on its way out, not ahead"
    assert ts2 <= calls[1] - 10, "order 2 was signed on its way out, not ahead"
    assert ts3 < calls[2] and calls[2] - ts3 <= 200 + 5, (calls[2] - ts3)
    (ts_get,) = [ts for _, p, ts, _ in fake.seen_auth if p.endswith("/portfolio/balance")]
    assert ts_get >= int(t_get), "a call that is not kept presigned is signed when sent"


async def test_wrong_key_is_refused_with_kalshis_error_body(fake):
    other = signing.Signer(fake.key_id, signing.generate_private_key())
    async with KalshiRest(fake.base_url, other, timeout=2, retry=FAST) as c:
        with pytest.raises(KalshiAuthError) as info:
            await c.get_balance()
    err = info.value
    assert err.status == 401
    assert err.code == "authentication_error"
    assert err.error_message == "bad signature"
    assert fake.count("GET", "/portfolio/balance") == 1  # 401 is never retried


# ------------------------------------------------------------------ retry policy


async def test_get_is_retried_on_5xx_and_429_then_succeeds(client, fake):
    fake.fault("GET", "/portfolio/balance", (503, {}), (429, {}), (500, {}))
    bal = await client.get_balance()
    assert bal.balance == 100000
    assert fake.count("GET", "/portfolio/balance") == 4


async def test_get_gives_up_after_max_attempts_with_the_last_error(client, fake):
    fake.fault("GET", "/portfolio/balance", *[(503, {})] * 10)
    with pytest.raises(KalshiServerError) as info:
        await client.get_balance()
    assert info.value.status == 503 and info.value.code == "e503"
    assert fake.count("GET", "/portfolio/balance") == FAST.max_attempts


async def test_retry_after_header_is_honoured(client, fake):
    fake.fault("GET", "/exchange/status", (429, {"Retry-After": "0.3"}))
    t0 = time.monotonic()
    await client.get_exchange_status()
    assert time.monotonic() - t0 >= 0.3
    assert fake.count("GET", "/exchange/status") == 2


async def test_retry_after_beyond_the_cap_raises_rate_limited(client, fake):
    fake.fault("GET", "/exchange/status", (429, {"Retry-After": "120"}))
    with pytest.raises(KalshiRateLimited) as info:
        await client.get_exchange_status()
    assert info.value.retry_after == 120
    assert fake.count("GET", "/exchange/status") == 1


V2 = "/portfolio/events/orders"


async def test_order_creation_is_retried_with_the_same_client_order_id(client, fake):
    fake.fault("POST", V2, (500, {}), (429, {}))
    ack = await client.create_order(
        "KXBTCD-T1", "yes", "buy", 3, Decimal("0.56"), client_order_id="coid-1"
    )
    assert (ack.client_order_id, ack.remaining_count) == ("coid-1", Decimal(3))
    assert fake.count("POST", V2) == 3
    assert list(fake.orders) == ["coid-1"]
    assert fake.orders["coid-1"]["yes_price_dollars"] == "0.5600"


async def test_order_accepted_but_answer_lost_is_not_placed_twice(client, fake):
    fake.accept_then_fail.add("coid-lost")
    ack = await client.create_order(
        "KXBTCD-T1", "no", "buy", 2, "0.44", client_order_id="coid-lost"
    )
    # first attempt stored the order and answered 502; the retry got 409 and the
    # client looked the order up by its client_order_id instead of placing another
    assert (ack.client_order_id, ack.recovered) == ("coid-lost", True)
    assert ack.order is not None and ack.order.book_side == "ask"
    assert ack.order.yes_price_dollars == Decimal("0.56")  # buy NO at 0.44 = ask YES at 0.56
    assert len(fake.orders) == 1
    assert fake.count("POST", V2) == 2
    assert fake.count("GET", "/portfolio/orders") == 1


async def test_a_409_is_resolved_by_client_order_id_not_by_ticker(client, fake):
    # another order rests on the same ticker first: a lookup by ticker would find it
    await client.create_order("KXBTCD-T1", "yes", "buy", 1, "0.10", client_order_id="other")
    fake.accept_then_fail.add("mine")
    ack = await client.create_order("KXBTCD-T1", "yes", "buy", 5, "0.20", client_order_id="mine")
    assert ack.recovered and ack.client_order_id == "mine"
    assert ack.order_id == fake.orders["mine"]["order_id"] != fake.orders["other"]["order_id"]
    assert ack.remaining_count == 5


async def test_duplicate_client_order_id_on_a_first_attempt_is_a_conflict(client, fake):
    await client.create_order("T", "yes", "buy", 1, "0.10", client_order_id="dup")
    with pytest.raises(KalshiConflict):
        await client.create_order("T", "yes", "buy", 1, "0.10", client_order_id="dup")


async def test_cancel_whose_answer_was_lost_resolves_to_the_canceled_order(client, fake):
    ack = await client.create_order("T", "yes", "buy", 4, "0.3", client_order_id="c")
    fake.cancel_then_fail.add(ack.order_id)
    result = await client.cancel_order(ack.order_id, ticker="T")
    assert (result.order_id, result.client_order_id, result.reduced_by) == (ack.order_id, "c", None)
    assert fake.count("DELETE", f"{V2}/{ack.order_id}") == 2
    assert "market_ticker=T" in fake.seen_queries[-2]
    # a plain 404 (nothing was attempted before) stays an error
    with pytest.raises(KalshiNotFound):
        await client.cancel_order(ack.order_id)


async def test_cancel_reports_how_many_contracts_it_took_off(client, fake):
    ack = await client.create_order("T", "no", "sell", "2.5", "0.7", client_order_id="c2")
    result = await client.cancel_order(ack.order_id)
    assert result.reduced_by == Decimal("2.5")


async def test_amend_and_decrease_are_not_retried_on_5xx(client, fake):
    fake.fault("POST", f"{V2}/o1/amend", (500, {}), (500, {}))
    with pytest.raises(KalshiServerError):
        await client.amend_order(
            "o1", ticker="T", side="yes", action="buy", price="0.5", count=1
        )
    assert fake.count("POST", f"{V2}/o1/amend") == 1

    fake.fault("POST", f"{V2}/o1/decrease", (503, {}))
    with pytest.raises(KalshiServerError):
        await client.decrease_order("o1", reduce_by=1)
    assert fake.count("POST", f"{V2}/o1/decrease") == 1


async def test_a_batch_create_is_repeated_with_the_same_client_order_ids(client, fake):
    fake.fault("POST", f"{V2}/batched", (502, {}))
    body = order_body("T", "yes", "buy", 1, "0.1", client_order_id="bb-1")
    with pytest.raises(KalshiBadRequest):  # past the 502, the fake does not script batches
        await client.batch_create_orders([body])
    assert fake.count("POST", f"{V2}/batched") == 2


async def test_other_posts_are_retried_on_429(client, fake):
    fake.fault("POST", f"{V2}/o1/amend", (429, {}))
    with pytest.raises(KalshiBadRequest):  # the fake answers 400 once past the 429
        await client.amend_order(
            "o1", ticker="T", side="yes", action="buy", price="0.5", count=1
        )
    assert fake.count("POST", f"{V2}/o1/amend") == 2


async def test_a_price_off_the_markets_tick_is_refused_before_sending(client, fake):
    fake.structures["TAPER"] = (
        "tapered_deci_cent",
        [
            {"start": "0.0000", "end": "0.1000", "step": "0.0010"},
            {"start": "0.1000", "end": "0.9000", "step": "0.0100"},
            {"start": "0.9000", "end": "1.0000", "step": "0.0010"},
        ],
    )
    await client.create_order("TAPER", "yes", "buy", 1, "0.001", client_order_id="t1")
    await client.create_order("TAPER", "no", "buy", 1, "0.001", client_order_id="t2")  # ask 0.999
    with pytest.raises(InvalidPrice, match=r"tick is 0\.01 \(nearest valid: 0\.55 or 0\.56\)"):
        await client.create_order("TAPER", "yes", "buy", 1, "0.555")
    with pytest.raises(InvalidPrice, match=r"tick is 0\.01"):
        await client.create_order("T", "yes", "sell", 1, "0.001")  # linear_cent
    with pytest.raises(InvalidPrice):
        await client.batch_create_orders([order_body("T", "yes", "buy", 1, "0.105")])
    assert fake.count("POST", V2) == 2 and fake.count("POST", f"{V2}/batched") == 0
    assert fake.count("GET", "/markets/TAPER") == 1  # the grid is read once, then kept


async def test_a_legacy_write_is_refused_before_it_is_sent(client, fake):
    for method in ("POST", "DELETE", "PUT"):
        with pytest.raises(LegacyOrderWrite):
            await client.request(method, "/portfolio/orders", json={})
        with pytest.raises(LegacyOrderWrite):
            await client.request(method, "/portfolio/orders/o1/amend", json={})
    assert sum(n for (m, _), n in fake.hits.items() if m != "GET") == 0


# ------------------------------------------------------------------ rate budget


async def test_a_burst_over_the_budget_is_paced_without_429s(fake):
    fake.limits = {"read": (200, 200), "write": (200, 200)}  # 20 reads/s, 20 orders/s
    signer = signing.Signer(fake.key_id, fake.key)
    once = RetryPolicy(max_attempts=1)
    # control: the same burst unpaced is refused in part
    async with KalshiRest(fake.base_url, signer, retry=once, timeout=5) as raw:
        results = await asyncio.gather(
            *[raw.get_exchange_status() for _ in range(60)], return_exceptions=True
        )
    assert any(isinstance(r, KalshiRateLimited) for r in results)
    await asyncio.sleep(1.1)  # let the server's bucket fill again
    fake.refused = 0
    async with KalshiRest(fake.base_url, signer, retry=once, timeout=5) as c:
        budget = await c.start()
        assert budget is not None and c.limits is not None and c.limits.read.refill_rate == 200
        t0 = time.monotonic()
        reads = await asyncio.gather(*[c.get_exchange_status() for _ in range(40)])
        acks = await asyncio.gather(
            *[c.create_order("T", "yes", "buy", 1, "0.10") for _ in range(25)]
        )
        cancels = await asyncio.gather(*[c.cancel_order(a.order_id) for a in acks])
        elapsed = time.monotonic() - t0
    assert len(reads) == 40 and len(cancels) == 25 and all(x.reduced_by == 1 for x in cancels)
    assert fake.count("GET", "/markets/T") == 1  # 25 first orders on T shared one grid read
    assert fake.refused == 0 and c.stats["retries"] == 0
    assert c.stats["paced_s"] > 0  # the client waited instead of being refused
    assert elapsed < 10


# ------------------------------------------------------------------ timeouts & transport


async def test_a_hanging_call_times_out(fake):
    fake.hang[("GET", PREFIX + "/exchange/status")] = 5
    signer = signing.Signer(fake.key_id, fake.key)
    async with KalshiRest(
        fake.base_url, signer, timeout=0.3, retry=RetryPolicy(max_attempts=2, base_delay=0.01)
    ) as c:
        t0 = time.monotonic()
        with pytest.raises(KalshiTimeout):
            await c.get_exchange_status()
        elapsed = time.monotonic() - t0
    assert elapsed < 2.0  # two attempts of 0.3 s, not the server's 5 s
    assert fake.count("GET", "/exchange/status") == 2


async def test_a_hanging_order_post_is_retried_with_the_same_id(fake):
    fake.hang[("POST", PREFIX + V2)] = 5
    signer = signing.Signer(fake.key_id, fake.key)
    async with KalshiRest(
        fake.base_url, signer, timeout=0.2, retry=RetryPolicy(max_attempts=2, base_delay=0.01)
    ) as c:
        with pytest.raises(KalshiTimeout):
            await c.create_order("T", "yes", "buy", 1, "0.5", client_order_id="h1")
    assert fake.count("POST", V2) == 2


async def test_connection_refused_is_a_transport_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with KalshiRest(f"http://127.0.0.1:{port}{PREFIX}", None, timeout=1, retry=FAST) as c:
        with pytest.raises(KalshiTransportError) as info:
            await c.get_exchange_status()
    assert info.value.never_sent
    assert c.stats["requests"] == FAST.max_attempts


# ------------------------------------------------------------------ pagination & parsing


async def test_iter_markets_walks_every_page(client, fake):
    tickers = [m.ticker async for m in client.iter_markets(limit=7)]
    assert tickers == [m["ticker"] for m in fake.markets]
    assert fake.count("GET", "/markets") == 4  # 7 + 7 + 7 + 4


async def test_tickers_filter_is_sent_comma_separated(client, fake):
    wanted = [fake.markets[3]["ticker"], fake.markets[9]["ticker"]]
    page = await client.get_markets(tickers=wanted)
    assert [m.ticker for m in page.items] == wanted
    assert page.cursor is None


async def test_prices_and_counts_parse_to_exact_decimals(client):
    m = (await client.get_markets(limit=1)).items[0]
    assert m.yes_bid_dollars == Decimal("0.5600") and isinstance(m.yes_bid_dollars, Decimal)
    assert m.open_interest_fp == Decimal("77.50")
    assert m.floor_strike == Decimal("97000.99")  # a JSON number, still exact
    book = await client.get_orderbook(m.ticker)
    assert book.yes[1].price == Decimal("0.55") and book.yes[1].count == Decimal("2.5")
    assert book.no[0] == (Decimal("0.42"), Decimal("7"))


def test_order_body_is_a_v2_body_with_fixed_point_strings():
    body = order_body("T", "yes", "buy", 5, Decimal("0.07"))
    assert {k: body[k] for k in ("side", "price", "count")} == {
        "side": "bid", "price": "0.0700", "count": "5.00"
    }
    assert body["time_in_force"] == "good_till_canceled"
    assert body["self_trade_prevention_type"] == "taker_at_cross"
    assert body["client_order_id"]  # generated, so the order can be retried
    assert not {"action", "yes_price_dollars", "no_price_dollars", "count_fp"} & set(body)
    frac = order_body("T", "no", "sell", "2.5", "0.123456", time_in_force="immediate_or_cancel")
    assert (frac["side"], frac["price"], frac["count"]) == ("bid", "0.876544", "2.50")
    with pytest.raises(ValueError):
        order_body("T", "maybe", "buy", 1, "0.5")
    with pytest.raises(ValueError):
        order_body("T", "yes", "buy", 1, "1.00")
    with pytest.raises(ValueError):
        order_body("T", "yes", "buy", 1, "0.5", time_in_force="GTT")


def test_retry_after_parses_seconds_and_http_dates():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None
