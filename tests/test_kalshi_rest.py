"""REST client against a small real HTTP server on loopback (tests/kalshi_fake.py: uvicorn +
Starlette) that checks every signature, paginates with cursors, and answers scripted
429/5xx/hangs, so the retry policy is observed on the wire: what the server saw is what the
tests assert.
"""

from __future__ import annotations

import asyncio
import socket
import time
from decimal import Decimal

import pytest

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
from tests import kalshi_fake

fake = kalshi_fake.fake
client = kalshi_fake.client
PREFIX, FAST = kalshi_fake.PREFIX, kalshi_fake.FAST


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
