"""Order writes on Trade API v3.31.0: direction translation, price grids, V2-only paths.

- :mod:`app.kalshi.direction`: the four outcome-side/action mappings to the YES
  book and back, at both ends of the price range (cent and sub-cent);
- :mod:`app.kalshi.prices`: linear_cent, deci_cent and tapered_deci_cent grids;
- every write method of :class:`~app.kalshi.rest.KalshiRest` is exercised through
  an ``httpx.MockTransport`` that records each request: none goes to the legacy
  ``/portfolio/orders`` write paths, and a new write method cannot slip past
  this test unexercised;
- :mod:`app.kalshi.ratelimit`: bucket pacing on a fake clock and the cost table.
"""

from __future__ import annotations

import inspect
import json
from decimal import Decimal

import httpx
import pytest

from app.kalshi import direction
from app.kalshi.direction import BookQuote, Intent, from_book, to_book
from app.kalshi.models import AccountLimits, EndpointCosts
from app.kalshi.prices import InvalidPrice, PriceGrid
from app.kalshi.ratelimit import RateBudget, TokenBucket, items_in
from app.kalshi.rest import ORDERS_V2, KalshiRest, RetryPolicy, is_legacy_order_write, order_body

D = Decimal
EDGE_PRICES = [D("0.01"), D("0.99"), D("0.001"), D("0.999"), D("0.5"), D("0.0001")]

# ------------------------------------------------------------------ direction

# (side, action, price in that side's terms) -> (book side, YES price)
FOUR = [
    ("yes", "buy", lambda p: ("bid", p)),
    ("no", "buy", lambda p: ("ask", 1 - p)),
    ("yes", "sell", lambda p: ("ask", p)),
    ("no", "sell", lambda p: ("bid", 1 - p)),
]


@pytest.mark.parametrize("price", EDGE_PRICES, ids=str)
@pytest.mark.parametrize(("side", "action", "expect"), FOUR, ids=lambda x: str(x)[:4])
def test_the_four_mappings_to_the_yes_book_and_back(side, action, expect, price):
    book_side, yes_price = expect(price)
    quote = to_book(side, action, price)
    assert quote == BookQuote(book_side, yes_price)
    assert quote.price + (price if side == "no" else 1 - price) == 1  # exact, no rounding
    # exposure: buy YES / sell NO build YES; buy NO / sell YES build NO
    assert quote.outcome_side == ("yes" if (side == "yes") == (action == "buy") else "no")
    # back: the quote expressed on the same outcome side is the original intent
    assert from_book(quote.book_side, quote.price, side) == Intent(side, action, price)


@pytest.mark.parametrize("price", EDGE_PRICES, ids=str)
def test_a_book_quote_reads_both_ways(price):
    for book_side in ("bid", "ask"):
        yes = from_book(book_side, price, "yes")
        no = from_book(book_side, price, "no")
        assert yes.price + no.price == 1 and yes.action != no.action
        assert to_book(yes.side, yes.action, yes.price) == BookQuote(book_side, price)
        assert to_book(no.side, no.action, no.price) == BookQuote(book_side, price)


def test_the_mapping_table_is_exhaustive_and_one_to_one():
    seen = {}
    for side in direction.OUTCOME_SIDES:
        for action in direction.ACTIONS:
            q = to_book(side, action, "0.30")
            seen[(side, action)] = (q.book_side, q.price)
    assert seen == {
        ("yes", "buy"): ("bid", D("0.30")),
        ("yes", "sell"): ("ask", D("0.30")),
        ("no", "buy"): ("ask", D("0.70")),
        ("no", "sell"): ("bid", D("0.70")),
    }
    assert direction.book_side_of("yes") == "bid" and direction.outcome_side_of("ask") == "no"
    assert direction.side_price("0.25", "no") == D("0.75")


@pytest.mark.parametrize("bad", ["0", "1", "1.00", "-0.01", "1.001", "0.0000"])
def test_prices_outside_the_open_unit_interval_are_refused(bad):
    with pytest.raises(ValueError, match="strictly between"):
        to_book("yes", "buy", bad)
    with pytest.raises(ValueError, match="strictly between"):
        from_book("bid", bad, "no")


def test_unknown_sides_and_actions_are_refused():
    for args in (("maybe", "buy", "0.5"), ("yes", "hold", "0.5")):
        with pytest.raises(ValueError):
            to_book(*args)
    with pytest.raises(ValueError):
        from_book("yes", "0.5", "yes")  # a book side is bid/ask
    with pytest.raises(ValueError):
        to_book("yes", "buy", 0.5)  # floats are refused  # type: ignore[arg-type]


# ------------------------------------------------------------------ price grids

TAPERED = [
    {"start": "0.0000", "end": "0.1000", "step": "0.0010"},
    {"start": "0.1000", "end": "0.9000", "step": "0.0100"},
    {"start": "0.9000", "end": "1.0000", "step": "0.0010"},
]


@pytest.mark.parametrize(
    ("structure", "valid", "invalid"),
    [
        ("linear_cent", ["0.01", "0.5", "0.99"], ["0.001", "0.999", "0.005", "0.555"]),
        ("deci_cent", ["0.001", "0.01", "0.555", "0.999"], ["0.0005", "0.5555"]),
        (
            "tapered_deci_cent",
            ["0.001", "0.099", "0.1", "0.11", "0.89", "0.9", "0.901", "0.999"],
            ["0.105", "0.555", "0.8999", "0.0005"],
        ),
    ],
)
def test_price_grids_by_structure(structure, valid, invalid):
    grids = [PriceGrid.from_structure(structure, "M")]
    if structure == "tapered_deci_cent":
        grids.append(PriceGrid.from_ranges(structure, TAPERED, "M"))
    for grid in grids:
        for p in valid:
            assert grid.check(p) == D(p)
        for p in invalid:
            with pytest.raises(InvalidPrice, match=r"M \(" + structure):
                grid.check(p)
        for p in ("0", "1", "1.5"):
            with pytest.raises(InvalidPrice, match=r"outside \(\$0, \$1\)"):
                grid.check(p)


def test_invalid_price_message_names_the_tick_and_the_nearest_valid_prices():
    grid = PriceGrid.from_ranges("tapered_deci_cent", TAPERED, "KXBTC-1")
    with pytest.raises(InvalidPrice) as info:
        grid.check("0.555")
    assert str(info.value) == (
        "KXBTC-1 (tapered_deci_cent): price 0.555 is not on the tick; between 0.1 and 0.9 "
        "the tick is 0.01 (nearest valid: 0.55 or 0.56)"
    )
    assert grid.tick_at("0.05") == D("0.001") and grid.tick_at("0.5") == D("0.01")


def test_a_structure_without_ranges_that_is_unknown_cannot_be_guessed():
    with pytest.raises(InvalidPrice, match="cannot tell valid prices"):
        PriceGrid.from_ranges("center_deci_edge_centi_cent", [], "M")
    # the market's own ranges always win over the name
    grid = PriceGrid.from_ranges(
        "center_deci_edge_centi_cent", [{"start": "0", "end": "1", "step": "0.0001"}]
    )
    assert grid.is_valid("0.0001")


# ------------------------------------------------------------------ V2-only write paths


class Recorder:
    """A MockTransport exchange that records every request and answers like V2."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict | None]] = []
        self.orders: list[dict] = []
        self.lose_next_create = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/trade-api/v2")
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.method, path, body))
        m = request.method
        if path.startswith("/markets/"):
            market = {"ticker": path.rsplit("/", 1)[1], "settlement_bounds_type": "default",
                      "price_level_structure": "tapered_deci_cent", "price_ranges": TAPERED}
            return httpx.Response(200, json={"market": market})
        exact = {
            ("GET", "/portfolio/orders"): lambda: httpx.Response(
                200, json={"orders": self.orders, "cursor": ""}),
            ("POST", ORDERS_V2): lambda: self.create(body),
            ("POST", f"{ORDERS_V2}/batched"): lambda: httpx.Response(201, json={"orders": [
                {"order_id": f"b{i}", "client_order_id": o["client_order_id"],
                 "fill_count": "0.00", "remaining_count": o["count"], "ts_ms": 1}
                for i, o in enumerate(body["orders"])]}),
            ("DELETE", f"{ORDERS_V2}/batched"): lambda: httpx.Response(200, json={"orders": [
                {"order_id": o["order_id"], "reduced_by": "1.00", "ts_ms": 1}
                for o in body["orders"]]}),
            ("DELETE", ORDERS_V2): lambda: httpx.Response(204),
        }.get((m, path))
        if exact is not None:
            return exact()
        if m == "GET" and path.startswith("/portfolio/orders/"):
            return httpx.Response(200, json={"order": self.orders[0]})
        if m == "DELETE" and path.startswith(f"{ORDERS_V2}/"):
            return httpx.Response(200, json={"order_id": path.rsplit("/", 1)[1],
                                             "reduced_by": "3.00", "ts_ms": 1})
        if m == "POST" and path.endswith("/amend"):
            return httpx.Response(200, json={"order_id": "o0", "remaining_count": body["count"],
                                             "fill_count": "0.00", "ts_ms": 1})
        if m == "POST" and path.endswith("/decrease"):
            return httpx.Response(200, json={"order_id": "o0", "remaining_count": "1.00",
                                             "ts_ms": 1})
        return httpx.Response(410, json={"code": "deprecated_v1_order_endpoint"})


    def create(self, body: dict) -> httpx.Response:
        if any(o["client_order_id"] == body["client_order_id"] for o in self.orders):
            return httpx.Response(409, json={"code": "order_already_exists"})
        self.orders.append(
            {"order_id": f"o{len(self.orders)}", "client_order_id": body["client_order_id"],
             "ticker": body["ticker"], "status": "canceled", "book_side": body["side"],
             "outcome_side": "yes" if body["side"] == "bid" else "no",
             "yes_price_dollars": body["price"], "remaining_count_fp": body["count"]}
        )
        if self.lose_next_create:
            self.lose_next_create = False
            return httpx.Response(502, json={"code": "bad_gateway"})
        o = self.orders[-1]
        return httpx.Response(201, json={"order_id": o["order_id"], "client_order_id":
                                         o["client_order_id"], "fill_count": "0.00",
                                         "remaining_count": body["count"], "ts_ms": 1})


WRITE_METHODS = {
    "create_order",
    "submit_order",
    "cancel_order",
    "cancel_all_orders",
    "amend_order",
    "decrease_order",
    "batch_create_orders",
    "batch_cancel_orders",
}
NOT_WRITES = {"start", "aclose", "request", "paginate", "remember_market", "set_price_grid",
              "price_grid", "check_price",
              # order groups: /portfolio/order_groups (tests/test_sim_order_groups.py)
              "create_order_group", "trigger_order_group", "reset_order_group",
              "set_order_group_limit", "delete_order_group"}


def _public_coroutines() -> set[str]:
    return {
        name
        for name, fn in inspect.getmembers(KalshiRest, inspect.isfunction)
        if not name.startswith("_") and inspect.iscoroutinefunction(fn)
    }


def test_every_public_method_is_either_a_read_or_exercised_below():
    reads = {n for n in _public_coroutines() if n.startswith(("get_", "find_"))}
    unknown = _public_coroutines() - reads - WRITE_METHODS - NOT_WRITES
    assert not unknown, f"new KalshiRest methods: add them to the V2 path test: {unknown}"


async def test_no_write_method_ever_touches_the_legacy_order_paths():
    rec = Recorder()
    fast = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002)
    async with KalshiRest(
        "http://127.0.0.1:9/trade-api/v2", None, transport=httpx.MockTransport(rec), retry=fast
    ) as c:
        exercised: set[str] = set()

        async def run(name: str, *args, **kw):
            exercised.add(name)
            return await getattr(c, name)(*args, **kw)

        ack = await run("create_order", "T", "no", "buy", 3, "0.999", client_order_id="a")
        rec.lose_next_create = True  # 502 then 409: resolved by a read, no legacy write
        lost = await run("create_order", "T", "yes", "sell", 1, "0.001", client_order_id="b")
        assert lost.recovered and lost.client_order_id == "b"
        await run("submit_order", order_body("T", "yes", "buy", 1, "0.42", client_order_id="c"))
        await run("cancel_order", ack.order_id, ticker="T")
        await run("cancel_all_orders")
        await run("amend_order", ack.order_id, ticker="T", side="no", action="buy",
                  price="0.995", count=4, updated_client_order_id="a2")
        await run("decrease_order", ack.order_id, reduce_to=1, ticker="T")
        items = await run("batch_create_orders", [order_body("T", "yes", "buy", 1, "0.05"),
                                                  order_body("T", "no", "sell", 2, "0.95")])
        await run("batch_cancel_orders", [items[0].order_id, (items[1].order_id, "T")])
    assert exercised == WRITE_METHODS
    writes = [(m, p) for m, p, _ in rec.calls if m not in ("GET", "HEAD")]
    assert writes and all(p.startswith(ORDERS_V2) for _, p in writes), writes
    assert not [c for c in rec.calls if is_legacy_order_write(c[0], c[1])]
    # bodies are V2: book side and YES price, count as a fixed-point string
    posts = [b for m, p, b in rec.calls if m == "POST" and p == ORDERS_V2]
    assert (posts[0]["side"], posts[0]["price"], posts[0]["count"]) == ("ask", "0.0010", "3.00")
    assert (posts[1]["side"], posts[1]["price"]) == ("ask", "0.0010")  # sell YES at 0.001
    assert posts[1] == posts[2]  # the retry is the same body, same client_order_id
    amend = next(b for m, p, b in rec.calls if p.endswith("/amend"))
    assert (amend["side"], amend["price"], amend["count"]) == ("ask", "0.0050", "4.00")
    cancels = next(b for m, p, b in rec.calls if m == "DELETE" and p.endswith("/batched"))
    assert cancels["orders"] == [{"order_id": "b0"}, {"order_id": "b1", "market_ticker": "T"}]


@pytest.mark.parametrize(
    ("method", "path", "legacy"),
    [
        ("POST", "/portfolio/orders", True),
        ("DELETE", "/portfolio/orders/abc", True),
        ("POST", "/portfolio/orders/abc/amend", True),
        ("POST", "/portfolio/orders/batched", True),
        ("DELETE", "/portfolio/orders/batched?x=1", True),
        ("GET", "/portfolio/orders", False),
        ("GET", "/portfolio/orders/abc", False),
        ("POST", "/portfolio/events/orders", False),
        ("DELETE", "/portfolio/order_groups/g1", False),
    ],
)
def test_legacy_write_detection(method, path, legacy):
    assert is_legacy_order_write(method, path) is legacy


# ------------------------------------------------------------------ rate budget


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _limits(read=(200, 200), write=(100, 200)) -> AccountLimits:
    return AccountLimits.model_validate(
        {
            "usage_tier": "basic",
            "read": {"refill_rate": read[0], "bucket_capacity": read[1]},
            "write": {"refill_rate": write[0], "bucket_capacity": write[1]},
            "grants": [],
        }
    )


async def test_a_bucket_lets_a_burst_through_then_paces_at_the_refill_rate():
    clock = FakeClock()
    bucket = TokenBucket(100, 50, clock=clock, sleep=clock.sleep)
    for _ in range(5):  # 5 x 10 = the capacity: no wait
        assert await bucket.acquire(10) == 0
    for _ in range(10):
        await bucket.acquire(10)
    assert clock.now == pytest.approx(1.0)  # 100 tokens at 100 tokens/s
    assert bucket.waited == pytest.approx(1.0)
    # a cost above the capacity waits for a full bucket instead of forever
    clock.now += 10
    assert await bucket.acquire(500) == 0 and bucket.tokens == 0


def test_costs_follow_endpoint_costs_and_batches_are_billed_per_order():
    costs = EndpointCosts.model_validate(
        {
            "default_cost": 10,
            "endpoint_costs": [
                {"method": "GET", "path": "/trade-api/v2/markets/{ticker}/orderbook", "cost": 3},
                {"method": "DELETE", "path": "/trade-api/v2/portfolio/events/orders/{order_id}",
                 "cost": 1},
            ],
        }
    )
    b = RateBudget.build(_limits(), costs)
    assert b.cost("GET", "/markets/KX-1.5/orderbook") == 3
    assert b.cost("GET", "/markets/KX-1") == 10
    assert b.cost("DELETE", f"{ORDERS_V2}/o1") == 1  # the exchange's figure wins over the spec's
    assert b.cost("POST", ORDERS_V2) == 10
    assert b.cost("POST", f"{ORDERS_V2}/batched", items=7) == 70
    assert b.cost("DELETE", f"{ORDERS_V2}/batched", items=7) == 14
    assert b.cost("DELETE", ORDERS_V2) == 2
    assert b.bucket("GET") is b.read and b.bucket("DELETE") is b.write
    assert items_in({"orders": [1, 2, 3]}) == 3 and items_in(None) == 1


def test_without_endpoint_costs_the_documented_costs_apply():
    b = RateBudget.build(_limits())
    assert b.cost("DELETE", f"{ORDERS_V2}/o1") == 2 and b.cost("POST", ORDERS_V2) == 10


async def test_the_budget_runs_a_little_below_the_published_limits():
    clock = FakeClock()
    b = RateBudget.build(_limits(write=(100, 200)), clock=clock, sleep=clock.sleep)
    assert b.write.capacity == 180 and b.write.rate == 95
    for _ in range(18 + 19):  # 18 at once, then 19 more at 9.5/s
        await b.spend("POST", ORDERS_V2)
    assert clock.now == pytest.approx(2.0)


async def test_a_bucket_the_exchange_reports_as_zero_is_not_paced():
    b = RateBudget.build(_limits(read=(0, 0), write=(100, 100)))
    assert b.read is None and b.write is not None
    assert await b.spend("GET", "/markets") == 0.0


def test_a_lifecycle_message_updates_the_grid():
    from app.kalshi.models import parse_ws_msg

    msg = parse_ws_msg(
        "market_lifecycle_v2",
        {"market_ticker": "M", "event_type": "price_level_structure_updated",
         "price_level_structure": "tapered_deci_cent", "price_ranges": TAPERED},
    )
    grid = PriceGrid.from_lifecycle(msg)
    assert grid is not None and grid.ticker == "M" and grid.is_valid("0.999")
    plain = parse_ws_msg("market_lifecycle_v2", {"market_ticker": "M", "event_type": "settled"})
    assert PriceGrid.from_lifecycle(plain) is None


async def test_a_429_empties_the_local_bucket_so_the_next_request_waits():
    clock = FakeClock()
    budget = RateBudget.build(_limits(read=(100, 100)), clock=clock, sleep=clock.sleep)
    answers = [httpx.Response(429, json={"code": "too_many_requests"}),
               httpx.Response(200, json={"exchange_active": True, "trading_active": True})]
    transport = httpx.MockTransport(lambda request: answers.pop(0))
    fast = RetryPolicy(max_attempts=2, base_delay=0.0001, max_delay=0.0001)
    async with KalshiRest("http://127.0.0.1:9/trade-api/v2", None, transport=transport,
                          retry=fast, budget=budget) as c:
        assert budget.read is not None and budget.read.tokens == 90
        await c.get_exchange_status()
    # the retry waited for 10 tokens at 95/s instead of going out at once
    assert clock.sleeps and clock.sleeps[0] == pytest.approx(10 / 95)


def test_http_statuses_map_to_error_classes():
    from app.kalshi import errors

    assert errors.error_class(410) is errors.KalshiGone
    assert errors.error_class(403) is errors.KalshiAuthError
    assert errors.error_class(503) is errors.KalshiServerError
    assert errors.error_class(418) is errors.KalshiHTTPError
