"""rec-trade-supervisor (port 8007): every second, a view of each open trade and the exit rules.

Per open trade: the index price, the probability of the trade's side, the buffer (index minus
strike), the momentum, the time in the trade and to the close (the coordinator's
``strike_table``), the close price (the best bid of the trade's side in the book rec-market-feed
keeps, i.e. what selling the contracts gets; without a book, 1 - the other side's ask) and the
unrealised P&L in cents (close value - cost - fees so far - the exit fee). The view is written
to ``trade_monitor`` (one row per trade) and served at ``GET /trades``.

Exit rules (trading settings, each on/off; ``auto_stop`` switches them all):

- ``probability``: P(side) < ``exit_probability_threshold`` while time to close >=
  ``exit_probability_min_ttc_sec``;
- ``momentum_spike``: momentum >= +``exit_momentum_threshold`` closes NO trades, <= -threshold
  closes YES trades;
- ``stop_loss`` / ``take_profit``: the close price is ``stop_loss_cents`` below /
  ``take_profit_cents`` above the entry price.

A rule that fires sends a close intent to rec-trade-manager (close_method ``auto``, the rule,
an idempotency key per trade and close attempt, a limit ``exit_max_slippage_cents`` under the
close price); the manager does the rest. No close is sent without a bid of the trade's side
(it could not fill), and the manager paces each trade's closes (429: the close waits); the
journal says once per trade why its close waits.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.db.pool import open_pool
from app.runtime import clock, lockstep
from app.runtime.service import Phase
from app.services import trade_common as tc
from app.services.trade_common import Json
from app.trading.exits import View, close_limit, exit_rule

ONE = Decimal(1)

OPEN_TRADES = """
SELECT t.id, t.ticker, t.side, t.quantity, t.entry_price, t.entry_cost, t.fees,
       t.close_attempts, extract(epoch FROM now() - t.opened_at)::int,
       (SELECT max(b.price) FROM feed_book_levels b WHERE b.ticker = t.ticker
        AND b.side = t.side) {strike_cols}
FROM trades t {strike_join}
WHERE t.status = 'open' ORDER BY t.id
"""
STRIKE_COLS = (", s.index_price, s.probability, s.buffer, s.momentum, s.time_to_close_sec, "
               "s.yes_ask, s.no_ask")
STRIKE_JOIN = "LEFT JOIN strike_table s ON s.market_ticker = t.ticker"


def build_view(row: tuple, with_strikes: bool) -> View:
    (tid, ticker, side, qty, entry_price, cost, fees, attempts, in_trade, bid, *rest) = row
    v = View(tid, ticker, side, qty, entry_price, in_trade or 0, close_attempts=attempts)
    if with_strikes:
        index, p_yes, buffer, momentum, ttc, yes_ask, no_ask = rest
        v.index_price, v.buffer, v.time_to_close_sec = index, buffer, ttc
        v.momentum = momentum
        if p_yes is not None:
            v.probability = p_yes if side == "yes" else ONE - p_yes
        if bid is None:
            other_ask = no_ask if side == "yes" else yes_ask
            if other_ask is not None and 0 < other_ask < 1:
                bid = ONE - other_ask
    v.close_price = bid
    if bid is not None and cost is not None:
        value = qty * bid - tc.fee_dollars(qty, bid)
        v.unrealised_pnl_cents = tc.cents(value - cost - (fees or 0))
    return v


class TradeSupervisorService(tc.TradingService):
    pool = None
    client: httpx.AsyncClient | None = None
    interval = 1.0

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.views: dict[int, View] = {}
        self.waiting: dict[int, str] = {}  # trades whose close waits: why (logged once)
        self.with_strikes = False
        self.stats: dict[str, Any] = {"cycles": 0, "last_cycle_ms": None, "max_cycle_ms": 0.0,
                                      "closes_requested": 0, "close_errors": 0}

    async def start(self, phase: Phase) -> None:
        s = self.settings
        self.interval = s.trade_supervisor_interval_sec
        self.pool = await phase("connect to database", open_pool(s, "rec-trade-supervisor"))
        await phase("check the tables", self._tables())
        self.client = httpx.AsyncClient(
            base_url=f"http://{s.target_host}:{s.trade_manager_port}", timeout=10.0)
        await phase("first cycle", self.cycle())
        self.spawn(self.loop(), "supervisor")
        await self.serve_http(phase, self.app(), s.trade_supervisor_port)

    async def stop(self) -> None:
        await super().stop()
        if self.client is not None:
            await self.client.aclose()

    async def _tables(self) -> None:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT to_regclass('strike_table') IS NOT NULL")
            with_strikes = (await cur.fetchone())[0]
        if with_strikes != self.with_strikes or self.stats["cycles"] == 0:
            if not with_strikes:
                self.log.warning("no strike_table yet (rec-coordinator): only the price rules "
                                 "(stop-loss, take-profit) can fire")
        self.with_strikes = with_strikes

    async def loop(self) -> None:
        if lockstep.active():
            return await lockstep.serve(self.cycle, self.log)
        next_at = time.monotonic()
        while True:
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            try:
                if self.stats["cycles"] % 30 == 0:
                    await self._tables()
                await self.cycle()
            except Exception:
                self.log.exception("supervisor cycle failed")
            if time.monotonic() - next_at > self.interval:
                next_at = time.monotonic()  # fell behind: do not try to catch up

    async def cycle(self) -> list[View]:
        t0 = time.perf_counter()
        sql = OPEN_TRADES.format(strike_cols=STRIKE_COLS if self.with_strikes else "",
                                 strike_join=STRIKE_JOIN if self.with_strikes else "")
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql)
            rows = await cur.fetchall()
            settings = await tc.load_settings(conn)
            views = [build_view(r, self.with_strikes) for r in rows]
            now = clock.now()
            if views:
                async with conn.cursor() as c:
                    await c.executemany(
                        "INSERT INTO trade_monitor (trade_id, ts, index_price, probability, "
                        "buffer, momentum, time_in_trade_sec, time_to_close_sec, close_price, "
                        "unrealised_pnl_cents) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                        "ON CONFLICT (trade_id) DO UPDATE SET ts = EXCLUDED.ts, "
                        "index_price = EXCLUDED.index_price, probability = EXCLUDED.probability, "
                        "buffer = EXCLUDED.buffer, momentum = EXCLUDED.momentum, "
                        "time_in_trade_sec = EXCLUDED.time_in_trade_sec, "
                        "time_to_close_sec = EXCLUDED.time_to_close_sec, "
                        "close_price = EXCLUDED.close_price, "
                        "unrealised_pnl_cents = EXCLUDED.unrealised_pnl_cents",
                        [(v.trade_id, now, v.index_price, v.probability, v.buffer, v.momentum,
                          v.time_in_trade_sec, v.time_to_close_sec, v.close_price,
                          v.unrealised_pnl_cents) for v in views])
        self.views = {v.trade_id: v for v in views}
        fired = [(v, r) for v in views if (r := exit_rule(v, settings)) is not None]
        if fired:
            slip = Decimal(str(settings.get("exit_max_slippage_cents", 5))) / 100
            await asyncio.gather(*(self.close(v, rule, why, slip) for v, (rule, why) in fired))
        ms = (time.perf_counter() - t0) * 1000
        self.stats["cycles"] += 1
        self.stats["last_cycle_ms"] = round(ms, 3)
        self.stats["max_cycle_ms"] = max(self.stats["max_cycle_ms"], round(ms, 3))
        self.stats["open_trades"] = len(views)
        return views

    async def close(self, v: View, rule: str, why: dict[str, Any], slip: Decimal) -> None:
        limit = close_limit(v, slip)
        if limit is None:  # nothing to sell into: an order could not fill
            self._waiting(v, f"exit rule {rule} fired but the book has no bid for "
                             f"{v.side}; the close waits for one")
            return
        body = {"intent": "close", "idempotency_key": f"sup-{v.trade_id}-{v.close_attempts + 1}",
                "trade_id": v.trade_id, "close_method": "auto", "close_rule": rule,
                "close_detail": {k: str(x) for k, x in why.items()},
                "limit_price": str(limit)}
        self.log.warning("trade %d (%s %s): exit rule %s fired %s; closing at %s", v.trade_id,
                         v.ticker, v.side, rule, {k: str(x) for k, x in why.items()}, limit)
        try:
            r = await self.client.post("/trades", json=body)
        except httpx.HTTPError as exc:
            self.stats["close_errors"] += 1
            self.log.error("trade %d: close intent not delivered: %s", v.trade_id, exc)
            return
        if r.status_code == 429:  # the manager paces this trade's closes
            self._waiting(v, f"exit rule {rule}: {r.json().get('message')}")
            return
        if r.status_code >= 300:
            self.stats["close_errors"] += 1
            self.log.error("trade %d: close intent refused: %s %s", v.trade_id, r.status_code,
                           r.text[:300])
            return
        self.waiting.pop(v.trade_id, None)
        self.stats["closes_requested"] += 1

    def _waiting(self, v: View, why: str) -> None:
        """A close that waits, in the journal once per trade and reason."""
        self.stats["closes_waiting"] = self.stats.get("closes_waiting", 0) + 1
        if self.waiting.get(v.trade_id) != why.split(";")[0]:
            self.waiting[v.trade_id] = why.split(";")[0]
            self.log.warning("trade %d (%s %s): close waiting: %s", v.trade_id, v.ticker,
                             v.side, why)

    def app(self) -> Starlette:
        return Starlette(routes=[*self.health_routes(),
                                 Route("/status", self.status_answer),
                                 Route("/trades", self.trades_answer)])

    async def status_answer(self, request: Request) -> Response:
        return Json({**self.stats, "with_strike_table": self.with_strikes})

    async def trades_answer(self, request: Request) -> Response:
        return Json({"trades": [v.as_dict() for v in self.views.values()]})
