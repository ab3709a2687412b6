"""A small real Kalshi-like HTTP server on loopback (uvicorn + Starlette) for the REST client's
tests: it checks every signature with app.kalshi.signing.verify, paginates with cursors, and
answers scripted 429/5xx/hangs, so what the server saw is what the tests assert.
Fixtures: ``fake`` (the server's state and fault script) and ``client`` (a KalshiRest on it).
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
from app.kalshi.rest import KalshiRest, RetryPolicy

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
