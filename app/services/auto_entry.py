"""rec-auto-entry (port 8009): enters watchlist strikes by rule. OFF by default.

Every second (and on the coordinator's NOTIFY ``watchlist``/``strike_table``), with the trading
settings read fresh from the database:

- ``auto_entry_enabled`` false and ``auto_entry_dry_run`` false: nothing is evaluated;
- ``auto_entry_dry_run``: every rule runs and a would-be entry is logged, nothing is sent.

For each watchlist row (``probability`` is that of the row's side), joined with the strike
table (time to close, momentum), in this order:

1. ``spike_cooldown``: a spike (|momentum| >= ``auto_entry_spike_threshold``) pauses every entry
   for ``auto_entry_spike_cooldown_sec``, and the pause lasts while |momentum| stays at or above
   ``auto_entry_spike_cooldown_threshold``;
2. ``time_to_close``: outside [``auto_entry_min_ttc_sec``, ``auto_entry_max_ttc_sec``];
3. ``duplicate_active_trade``: rec already has an active trade on the strike and side;
4. ``strike_cooldown``: an entry on the strike and side within ``auto_entry_strike_cooldown_sec``;
5. ``probability``: below ``auto_entry_min_probability``;
6. ``diff``: probability minus ask below ``auto_entry_min_diff_cents``;

otherwise it enters: ``auto_entry_position_size`` x ``auto_entry_multiplier`` contracts at the
ask (+ ``auto_entry_max_slippage_cents``) through rec-trade-manager (strategy ``auto_entry``,
entry method ``auto``). Every decision is logged with its fields (journal and
``auto_entry_decisions``) when it differs from the last one for that strike and side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from psycopg import AsyncConnection
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.db import retention
from app.db.pool import conninfo, open_pool
from app.db.retention import Retention
from app.runtime import clock, lockstep
from app.runtime.service import Phase
from app.services import trade_common as tc
from app.services.trade_common import Json

CANDIDATES = """
SELECT w.market_ticker, w.side, w.probability, w.ask, w.diff_cents, w.volume,
       extract(epoch FROM w.computed_at) * 1000, s.time_to_close_sec, s.momentum,
       EXISTS (SELECT 1 FROM trades t WHERE t.ticker = w.market_ticker AND t.side = w.side
               AND t.status IN ('pending', 'submitted', 'open', 'closing')),
       (SELECT extract(epoch FROM now() - max(t.opened_at)) FROM trades t
        WHERE t.ticker = w.market_ticker AND t.side = w.side AND t.entry_method = 'auto')
FROM watchlist w LEFT JOIN strike_table s ON s.market_ticker = w.market_ticker
ORDER BY w.diff_cents DESC NULLS LAST, w.market_ticker, w.side
"""


@dataclass
class Candidate:
    ticker: str
    side: str
    probability: Decimal | None
    ask: Decimal | None
    diff_cents: Decimal | None
    volume: Decimal | None = None
    computed_ms: int = 0
    time_to_close_sec: int | None = None
    momentum: Decimal | None = None
    active_trade: bool = False
    since_last_entry_sec: float | None = None

    def fields(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items()}


@dataclass
class Spike:
    """The spike pause: entered at |momentum| >= threshold, held while |momentum| >= the
    cooldown threshold, released ``cooldown_sec`` after that."""

    until: float = 0.0
    active: bool = False
    momentum: Decimal | None = None
    history: list[tuple[float, str]] = field(default_factory=list)

    def update(self, momentum: Decimal | None, s: dict[str, Any], now: float) -> bool:
        self.momentum = momentum
        if not s.get("auto_entry_spike_enabled", True) or momentum is None:
            self.active = now < self.until
            return self.active
        m = abs(momentum)
        cooldown = float(s.get("auto_entry_spike_cooldown_sec", 900))
        hold = Decimal(str(s.get("auto_entry_spike_cooldown_threshold",
                                 s.get("auto_entry_spike_threshold", "0.36"))))
        spike = Decimal(str(s.get("auto_entry_spike_threshold", "0.36")))
        if m >= spike or (self.active and m >= hold):
            self.until = now + cooldown
        was, self.active = self.active, now < self.until
        if was != self.active:
            self.history.append((now, "on" if self.active else "off"))
        return self.active


def decide(c: Candidate, s: dict[str, Any], spiking: bool) -> tuple[str, str]:
    """(decision, reason): ("enter", "all rules pass") or ("skip", the rule that held)."""
    if spiking:
        return "skip", "spike_cooldown"
    ttc = c.time_to_close_sec
    if ttc is None or not (int(s["auto_entry_min_ttc_sec"]) <= ttc
                           <= int(s["auto_entry_max_ttc_sec"])):
        return "skip", "time_to_close"
    if c.active_trade:
        return "skip", "duplicate_active_trade"
    if (c.since_last_entry_sec is not None
            and c.since_last_entry_sec < float(s["auto_entry_strike_cooldown_sec"])):
        return "skip", "strike_cooldown"
    if c.probability is None or c.probability < Decimal(str(s["auto_entry_min_probability"])):
        return "skip", "probability"
    if c.diff_cents is None or c.diff_cents < Decimal(str(s["auto_entry_min_diff_cents"])):
        return "skip", "diff"
    if c.ask is None or not (0 < c.ask < 1):
        return "skip", "no_ask"
    return "enter", "all rules pass"


def entry_size(s: dict[str, Any]) -> Decimal:
    return (Decimal(str(s.get("auto_entry_position_size", 1)))
            * Decimal(str(s.get("auto_entry_multiplier", 1)))).to_integral_value()


class AutoEntryService(tc.TradingService):
    pool = None
    client: httpx.AsyncClient | None = None
    interval = 1.0

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.wake = asyncio.Event()
        self.spike = Spike()
        self.last: dict[tuple[str, str], tuple[str, str]] = {}
        self.mode = "off"
        self.stats: dict[str, Any] = {"cycles": 0, "entries": 0, "dry_runs": 0, "skips": 0,
                                      "refused": 0, "last_cycle_ms": None}

    async def start(self, phase: Phase) -> None:
        s = self.settings
        self.interval = s.auto_entry_interval_sec
        self.pool = await phase("connect to database", open_pool(s, "rec-auto-entry"))
        self.client = httpx.AsyncClient(
            base_url=f"http://{s.target_host}:{s.trade_manager_port}", timeout=10.0)
        await phase("first cycle", self.cycle())
        self.spawn(self.loop(), "auto-entry")
        self.spawn(self.listen(), "auto-entry-listen")
        self.spawn(retention.prune_loop(self.pool, [Retention(
            "auto_entry_decisions", "ts", s.auto_entry_decisions_retention_days,
            what="entry decisions")], self.log), "auto-entry-retention")
        await self.serve_http(phase, self.app(), s.auto_entry_port)

    async def stop(self) -> None:
        await super().stop()
        if self.client is not None:
            await self.client.aclose()

    async def listen(self) -> None:
        while True:
            try:
                conn = await AsyncConnection.connect(
                    conninfo(self.settings, "rec-auto-entry-listen"), autocommit=True)
                async with conn:
                    await conn.execute("LISTEN watchlist")
                    await conn.execute("LISTEN strike_table")
                    async for _ in conn.notifies():
                        self.wake.set()
            except Exception as exc:
                self.log.warning("LISTEN connection lost (%s); reconnecting", exc)
                await asyncio.sleep(1)

    async def loop(self) -> None:
        if lockstep.active():
            return await lockstep.serve(self.cycle, self.log)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.interval)
            self.wake.clear()
            try:
                await self.cycle()
            except Exception:
                self.log.exception("auto-entry cycle failed")
                await asyncio.sleep(1)

    async def _tables_ready(self, conn) -> bool:
        cur = await conn.execute("SELECT to_regclass('watchlist') IS NOT NULL AND "
                                 "to_regclass('strike_table') IS NOT NULL")
        return bool((await cur.fetchone())[0])

    async def cycle(self) -> None:
        t0 = time.perf_counter()
        self.stats["cycles"] += 1
        async with self.pool.connection() as conn:
            s = await tc.load_settings(conn)
            mode = ("on" if s.get("auto_entry_enabled") else
                    "dry_run" if s.get("auto_entry_dry_run") else "off")
            if mode == "on" and s.get("auto_entry_dry_run"):
                mode = "dry_run"
            if mode != self.mode:
                self.log.warning("auto entry %s", {"on": "ON", "dry_run": "in DRY RUN",
                                                   "off": "off"}[mode])
                self.mode = mode
            if mode == "off" or not await self._tables_ready(conn):
                return
            cur = await conn.execute(CANDIDATES)
            cands = [Candidate(r[0], r[1], r[2], r[3], r[4], r[5], int(r[6] or 0), r[7], r[8],
                               bool(r[9]), float(r[10]) if r[10] is not None else None)
                     for r in await cur.fetchall()]
            momentum = await self._momentum(conn, cands)
        spiking = self.spike.update(momentum, s, clock.monotonic())
        entered: set[tuple[str, str]] = set()
        for c in cands:
            decision, reason = decide(c, s, spiking)
            if decision == "enter" and (c.ticker, c.side) in entered:
                decision, reason = "skip", "duplicate_active_trade"
            if decision == "enter":
                entered.add((c.ticker, c.side))
                if mode == "dry_run":
                    self.stats["dry_runs"] += 1
                    await self.record(c, "dry_run", "would enter", {
                        "count": entry_size(s), "limit_price": self._limit(c, s)})
                else:
                    await self.enter(c, s)
            else:
                self.stats["skips"] += 1
                await self.record(c, "skip", reason, {"spike_momentum": self.spike.momentum}
                                  if reason == "spike_cooldown" else {})
        self.stats["last_cycle_ms"] = round((time.perf_counter() - t0) * 1000, 3)

    async def _momentum(self, conn, cands: list[Candidate]) -> Decimal | None:
        cur = await conn.execute("SELECT to_regclass('index_prices') IS NOT NULL")
        if (await cur.fetchone())[0]:
            cur = await conn.execute("SELECT momentum FROM index_prices ORDER BY ts DESC LIMIT 1")
            row = await cur.fetchone()
            if row is not None and row[0] is not None:
                return row[0]
        ms = [c.momentum for c in cands if c.momentum is not None]
        return ms[0] if ms else None

    @staticmethod
    def _limit(c: Candidate, s: dict[str, Any]) -> Decimal:
        slip = Decimal(str(s.get("auto_entry_max_slippage_cents", 0))) / 100
        assert c.ask is not None
        return min(Decimal("0.99"), c.ask + slip)

    async def enter(self, c: Candidate, s: dict[str, Any]) -> None:
        count, limit = entry_size(s), self._limit(c, s)
        body = {"intent": "open", "idempotency_key": f"auto-{c.ticker}-{c.side}-{c.computed_ms}",
                "market": c.ticker, "side": c.side, "count": str(count),
                "limit_price": str(limit), "strategy": "auto_entry", "entry_method": "auto"}
        try:
            r = await self.client.post("/trades", json=body)
        except httpx.HTTPError as exc:
            await self.record(c, "error", f"manager unreachable: {exc}", {"request": body},
                              force=True)
            return
        if r.status_code in (200, 201):
            trade = r.json()["trade"]
            self.stats["entries"] += 1
            await self.record(c, "enter", "all rules pass", {"count": count,
                                                              "limit_price": limit},
                              trade_id=trade["id"], force=True)
        else:
            self.stats["refused"] += 1
            answer = r.json() if r.headers.get("content-type", "").startswith(
                "application/json") else {"message": r.text[:300]}
            await self.record(c, "refused", answer.get("limit") or answer.get("code")
                              or str(r.status_code), {"answer": answer}, force=True)

    async def record(self, c: Candidate, decision: str, reason: str, extra: dict[str, Any],
                     trade_id: int | None = None, force: bool = False) -> None:
        key = (c.ticker, c.side)
        if not force and self.last.get(key) == (decision, reason):
            return
        self.last[key] = (decision, reason)
        fields = {**c.fields(), **{k: (str(v) if isinstance(v, Decimal) else v)
                                   for k, v in extra.items()}}
        level = 30 if decision in ("enter", "refused", "error") else 20
        self.log.log(level, "auto entry %s %s %s: %s %s", decision, c.ticker, c.side, reason,
                     json.dumps(fields, default=str))
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO auto_entry_decisions (market_ticker, side, decision, reason, "
                "fields, trade_id) VALUES (%s,%s,%s,%s,%s,%s)",
                (c.ticker, c.side, decision, reason, json.dumps(fields, default=str), trade_id))

    def app(self) -> Starlette:
        return Starlette(routes=[*self.health_routes(),
                                 Route("/status", self.status_answer)])

    async def status_answer(self, request: Request) -> Response:
        return Json({**self.stats, "mode": self.mode, "spike_pause": self.spike.active,
                     "momentum": self.spike.momentum})
