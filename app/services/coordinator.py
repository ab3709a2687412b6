"""rec-coordinator: every second, per followed series, a probability per strike.

For each series of ``coordinator_series`` (``SERIES:INDEX``), concurrently, every
``coordinator_interval_sec``:

1. the index's newest row from ``index_prices`` (price, momentum); older than
   ``coordinator_max_index_age_sec`` or marked stale by rec-price-feed: the series fails;
2. the open hourly event (the earliest close still ahead) from ``markets`` (rec-market-feed)
   and each market's ``rules_primary``: the settlement window and index it names;
3. the ``coordinator_strikes_each_side`` strikes below and above the price, with asks from
   ``feed_book_levels`` and volume from ``feed_quotes``; when rec-market-feed's
   ``feed_status`` is older than ``coordinator_max_market_age_sec`` (or not ws/http), the
   asks and volume are withheld (NULL, no watchlist) and ``series_status.error`` says why;
4. per strike (off the event loop, on ``coordinator_workers`` threads): buffer, P(YES) of
   the settlement average (:mod:`app.pricing.model`: the newest fingerprint model of the
   index when its cell has ``coordinator_min_fingerprint_samples``, else the lognormal on
   realised volatility), yes/no diffs, active side, time to close, the window's progress
   and running average;
5. one transaction: the series' ``strike_table`` rows replaced, its ``watchlist`` rows
   (``watchlist_*`` filters), ``series_status`` and ``NOTIFY strike_table, '<series>'``.

A failing series has its rows removed (never stale numbers shown as current) and its
``series_status`` row names the error; the others go on. A new model version in
``prob_models`` is picked up at the next cycle. The cycle's duration is logged at debug,
at warning when it overruns the period.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.config import Settings
from app.db.pool import DATABASE_DOWN, DatabaseWait, open_pool
from app.pricing import rules as rules_mod
from app.pricing.model import Fingerprint, Settlement, price_strike
from app.pricing.series import SeriesState, parse_series, status_columns
from app.runtime import clock, lockstep
from app.runtime.notify import Notifier
from app.runtime.service import Phase, Service


class SeriesFailed(Exception):
    """A series cannot be priced this cycle; the message says why."""


class SeriesWarming(SeriesFailed):
    """Not priced yet for want of history that comes by itself with time (no index value
    stored yet, fewer returns than the lognormal needs and no model): the series' state is
    :attr:`SeriesState.WARMING`, which rec-web's health treats as waiting, like no row."""


def d(x: float | None, places: int = 8) -> Decimal | None:
    if x is None or math.isnan(x):
        return None
    return Decimal(f"{x:.{places}f}")


@dataclass
class IndexCache:
    """Recent (ts, price) rows of one index, topped up each cycle."""

    lookback: int
    rows: deque[tuple[int, float]] = field(default_factory=deque)

    def extend(self, new: list[tuple[int, float]]) -> None:
        for ts, p in new:
            if not self.rows or ts > self.rows[-1][0]:
                self.rows.append((ts, p))
        if self.rows:
            cut = self.rows[-1][0] - self.lookback
            while self.rows and self.rows[0][0] < cut:
                self.rows.popleft()

    def sigma(self) -> tuple[float | None, int]:
        """Realised per-second volatility of log returns (gaps scaled by their length)."""
        acc, n = 0.0, 0
        prev = None
        for ts, p in self.rows:
            if prev is not None and 0 < ts - prev[0] <= 60:
                r = math.log(p / prev[1])
                acc += r * r / (ts - prev[0])
                n += 1
            prev = (ts, p)
        return (math.sqrt(acc / n) if n else None), n

    def window(self, start_excl: int, end_incl: int) -> tuple[float, int]:
        total, n = 0.0, 0
        for ts, p in reversed(self.rows):
            if ts <= start_excl:
                break
            if ts <= end_incl:
                total += p
                n += 1
        return total, n


@dataclass
class MarketRow:
    ticker: str
    event_ticker: str
    close: datetime
    strike: float
    rules: str
    yes_ask: float | None = None
    no_ask: float | None = None
    volume: float | None = None


class CoordinatorService(Service):
    pool = None

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.series = parse_series(settings.coordinator_series)
        self.caches = {ix: IndexCache(settings.coordinator_vol_lookback_min * 60 + 120)
                       for _, ix in self.series}
        self.models: dict[str, Fingerprint | None] = dict.fromkeys(self.caches)
        self.notifier = Notifier()
        self.executor = ThreadPoolExecutor(settings.coordinator_workers,
                                           thread_name_prefix="coordinator")
        self.cycles = 0
        self.failing: dict[str, str] = {}
        self.warned: dict[str, str | None] = {}
        self.durations: deque[float] = deque(maxlen=1000)
        self.db = DatabaseWait(self.log, self.notifier.status)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, phase: Phase) -> None:
        self.pool = await phase("connect to database", open_pool(self.settings,
                                                                 "rec-coordinator"))
        await phase("load probability models", self.load_models())
        await phase("first cycle", self.cycle())

    async def run(self) -> None:
        if lockstep.active():
            return await lockstep.serve(self.cycle, self.log)
        period = self.settings.coordinator_interval_sec
        next_at = time.monotonic()
        while True:
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() - next_at > period:
                next_at = time.monotonic()  # fell behind: start again from now
            await self.cycle()

    async def stop(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.pool is not None:
            await self.pool.close()

    # ------------------------------------------------------------------ models

    async def load_models(self) -> None:
        """The newest active model per index, when its version changed."""
        async with self.pool.connection() as conn:  # type: ignore[union-attr]
            cur = await conn.execute(
                "SELECT DISTINCT ON (index_name) index_name, version FROM prob_models "
                "WHERE active AND index_name = ANY(%s) ORDER BY index_name, version DESC",
                (list(self.caches),))
            newest = dict(await cur.fetchall())
            for ix in self.caches:
                have = self.models.get(ix)
                want = newest.get(ix)
                if want is None:
                    if have is not None:
                        self.log.warning("%s: no active model any more: lognormal only", ix)
                    self.models[ix] = None
                    continue
                if have is not None and have.version == want:
                    continue
                cur = await conn.execute("SELECT params, tables FROM prob_models "
                                         "WHERE version = %s", (want,))
                params, tables = await cur.fetchone()
                self.models[ix] = Fingerprint.from_json(want, params, tables)
                self.log.info("%s: fingerprint model version %d loaded (%d cells)", ix, want,
                              len(self.models[ix].cells))

    # ------------------------------------------------------------------ the cycle

    async def cycle(self) -> None:
        # the database down or restarting: wait for it (one warning, STATUS=), price after
        await self.db.run("the pricing cycle", self._database_answers)
        t0 = time.perf_counter()
        try:
            await self.load_models()
        except Exception as exc:  # keep the models we have; say so
            self.log.warning("model check failed: %s: %s", type(exc).__name__, exc)
        results = await asyncio.gather(*(self.one_series(s, ix) for s, ix in self.series),
                                       return_exceptions=True)
        for (series, _), res in zip(self.series, results, strict=True):
            if isinstance(res, BaseException) and not isinstance(res, DATABASE_DOWN):
                self.log.error("%s: cycle error: %s: %s", series, type(res).__name__, res)
        elapsed = time.perf_counter() - t0
        self.durations.append(elapsed)
        self.cycles += 1
        period = self.settings.coordinator_interval_sec
        if elapsed > period:
            self.log.warning("cycle took %.0f ms, over its %.0f ms period", elapsed * 1000,
                             period * 1000)
        else:
            self.log.debug("cycle %d took %.1f ms", self.cycles, elapsed * 1000)
        ok = [s for s, _ in self.series if s not in self.failing]
        text = f"cycle {elapsed * 1000:.0f} ms; ok: {','.join(ok) or 'none'}"
        if self.failing:
            text += "; failing: " + "; ".join(f"{s}: {e}" for s, e in self.failing.items())
        self.notifier.status(text[:400])

    async def _database_answers(self) -> None:
        async with self.pool.connection() as conn:  # type: ignore[union-attr]
            await conn.execute("SELECT 1")

    async def one_series(self, series: str, index: str) -> None:
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.coordinator_interval_sec * 3):
                rows, event, warning = await self.compute(series, index)
        except SeriesFailed as exc:
            state = SeriesState.WARMING if isinstance(exc, SeriesWarming) else SeriesState.FAILED
            await self.fail(series, index, state, str(exc), t0)
        except DATABASE_DOWN:
            raise
        except Exception as exc:
            await self.fail(series, index, SeriesState.FAILED, f"{type(exc).__name__}: {exc}",
                            t0)
        else:
            await self.publish(series, index, event, rows, t0, warning)

    async def compute(self, series: str, index: str) -> tuple[list[dict], str]:
        s = self.settings
        async with self.pool.connection() as conn:  # type: ignore[union-attr]
            head = await (await conn.execute(
                "SELECT extract(epoch FROM p.ts)::bigint, p.price::float8, p.momentum::float8, "
                "extract(epoch FROM now() - p.received_at)::float8, f.state "
                "FROM index_prices p LEFT JOIN index_freshness f USING (index_name) "
                "WHERE p.index_name = %s ORDER BY p.ts DESC LIMIT 1", (index,))).fetchone()
            if head is None:
                raise SeriesWarming(f"no {index} price stored yet")
            ts, price, mom, age, state = head
            if state == "stale" or age > s.coordinator_max_index_age_sec:
                raise SeriesFailed(f"{index} is stale: newest row {age:.0f}s old")
            cache = self.caches[index]
            since = cache.rows[-1][0] if cache.rows else ts - cache.lookback
            new = await (await conn.execute(
                "SELECT extract(epoch FROM ts)::bigint, price::float8 FROM index_prices "
                "WHERE index_name = %s AND ts > to_timestamp(%s) AND ts <= to_timestamp(%s) "
                "ORDER BY ts", (index, since, ts))).fetchall()
            cache.extend([(int(a), float(b)) for a, b in new])
            markets, warning = await self.open_event(conn, series, ts)
        sigma, sigma_n = cache.sigma()
        if sigma_n < s.coordinator_min_vol_samples:
            sigma = None
        model = self.models.get(index)
        if sigma is None and model is None:
            raise SeriesWarming(f"{index}: {sigma_n} returns stored, the lognormal needs "
                               f"{s.coordinator_min_vol_samples}, and no model is built")
        chosen = pick_strikes(markets, price, s.coordinator_strikes_each_side)
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(
            self.executor, price_rows, chosen, index, ts, price, mom, sigma, sigma_n, model,
            s.coordinator_min_fingerprint_samples, cache)
        return rows, chosen[0].event_ticker if chosen else markets[0].event_ticker, warning

    async def market_data_problem(self, conn: Any) -> str | None:
        """Why the stored books cannot be taken as current, or None."""
        row = await (await conn.execute(
            "SELECT mode, extract(epoch FROM now() - updated_at)::float8 FROM feed_status "
            "WHERE name = 'market-feed'")).fetchone()
        if row is None:
            return "asks withheld: rec-market-feed has not reported (feed_status)"
        mode, age = row
        if mode not in ("ws", "http") or age > self.settings.coordinator_max_market_age_sec:
            return f"asks withheld: rec-market-feed is {mode}, last reported {age:.0f}s ago"
        return None

    async def open_event(self, conn: Any, series: str,
                         ts: int) -> tuple[list[MarketRow], str | None]:
        rows = await (await conn.execute(
            "SELECT ticker, event_ticker, close_time, floor_strike::float8, "
            "coalesce(raw->>'rules_primary', '') FROM markets WHERE series_ticker = %s "
            "AND status IN ('active', 'open') AND close_time > to_timestamp(%s) "
            "AND strike_type = 'greater' AND floor_strike IS NOT NULL "
            "ORDER BY close_time, floor_strike", (series, ts))).fetchall()
        if not rows:
            raise SeriesFailed(f"no open {series} event in markets")
        first_close = rows[0][2]
        markets = [MarketRow(t, e, c, k, r) for t, e, c, k, r in rows if c == first_close]
        problem = await self.market_data_problem(conn)
        if problem is not None:
            return markets, problem
        tickers = [m.ticker for m in markets]
        books = await (await conn.execute(
            "SELECT ticker, side, max(price)::float8 FROM feed_book_levels "
            "WHERE ticker = ANY(%s) GROUP BY ticker, side", (tickers,))).fetchall()
        best = {(t, side): p for t, side, p in books}
        vols = await (await conn.execute(
            "SELECT ticker, volume::float8 FROM feed_quotes "
            "WHERE ticker = ANY(%s) AND volume IS NOT NULL",
            (tickers,))).fetchall()
        volume = dict(vols)
        for m in markets:
            yes_bid, no_bid = best.get((m.ticker, "yes")), best.get((m.ticker, "no"))
            m.yes_ask = round(1 - no_bid, 4) if no_bid is not None else None
            m.no_ask = round(1 - yes_bid, 4) if yes_bid is not None else None
            m.volume = volume.get(m.ticker)
        return markets, None

    # ------------------------------------------------------------------ output

    async def publish(self, series: str, index: str, event: str, rows: list[dict],
                      t0: float, warning: str | None = None) -> None:
        s = self.settings
        watch = [w for r in rows for w in watch_rows(r, s)]
        async with self.pool.connection() as conn:  # type: ignore[union-attr]
            async with conn.transaction():
                await conn.execute("DELETE FROM strike_table WHERE series_ticker = %s",
                                   (series,))
                if rows:
                    cols = list(rows[0])
                    async with conn.cursor() as cur:
                        await cur.executemany(
                            f"INSERT INTO strike_table ({', '.join(cols)}) VALUES "
                            f"({', '.join(['%s'] * len(cols))})",
                            [tuple(r[c] for c in cols) for r in rows])
                await conn.execute("DELETE FROM watchlist WHERE series_ticker = %s", (series,))
                if watch:
                    async with conn.cursor() as cur:
                        await cur.executemany(
                            "INSERT INTO watchlist (market_ticker, side, series_ticker, "
                            "probability, ask, diff_cents, volume, computed_at) VALUES "
                            "(%s, %s, %s, %s, %s, %s, %s, now())", watch)
                await self._status(conn, series, SeriesState.PRICED, warning, index, event,
                                   len(rows), t0)
                await conn.execute("SELECT pg_notify('strike_table', %s)", (series,))
        if series in self.failing:
            self.log.warning("%s: priced again (%d strikes)", series, len(rows))
            del self.failing[series]
        if warning != self.warned.get(series):
            if warning:
                self.log.warning("%s: %s", series, warning)
            elif series in self.warned:
                self.log.info("%s: market data current again", series)
            self.warned[series] = warning

    async def fail(self, series: str, index: str, state: SeriesState, reason: str,
                   t0: float) -> None:
        _, _, error = status_columns(state, reason)
        assert error is not None
        if _kind(self.failing.get(series)) != _kind(error):  # not again for a changed age
            self.log.warning("%s: not priced: %s", series, error)
        self.failing[series] = error
        with contextlib.suppress(Exception):
            async with self.pool.connection() as conn:  # type: ignore[union-attr]
                async with conn.transaction():
                    await conn.execute("DELETE FROM strike_table WHERE series_ticker = %s",
                                       (series,))
                    await conn.execute("DELETE FROM watchlist WHERE series_ticker = %s",
                                       (series,))
                    await self._status(conn, series, state, reason, index, None, 0, t0)
                    await conn.execute("SELECT pg_notify('strike_table', %s)", (series,))

    @staticmethod
    async def _status(conn: Any, series: str, state: SeriesState, reason: str | None,
                      index: str, event: str | None, n: int, t0: float) -> None:
        state_column, ok, error = status_columns(state, reason)
        await conn.execute(
            "INSERT INTO series_status (series_ticker, state, ok, error, index_name, "
            "event_ticker, rows, cycle_ms, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now()) "
            "ON CONFLICT (series_ticker) DO UPDATE SET state = EXCLUDED.state, ok = EXCLUDED.ok, "
            "error = EXCLUDED.error, index_name = EXCLUDED.index_name, "
            "event_ticker = EXCLUDED.event_ticker, rows = EXCLUDED.rows, "
            "cycle_ms = EXCLUDED.cycle_ms, updated_at = now()",
            (series, state_column, ok, error, index, event, n,
             d((time.perf_counter() - t0) * 1000, 3)))


def _kind(error: str | None) -> str | None:
    """An error without its figures ("newest row 14s old" and "... 15s old" are one)."""
    return None if error is None else re.sub(r"[0-9.]+", "#", error)


def pick_strikes(markets: list[MarketRow], price: float, each_side: int) -> list[MarketRow]:
    """The ``each_side`` strikes below the price and the ``each_side`` above it."""
    below = [m for m in markets if m.strike <= price]
    above = [m for m in markets if m.strike > price]
    return below[-each_side:] + above[:each_side]


def price_rows(markets: list[MarketRow], index: str, ts: int, price: float,
               momentum: float | None, sigma: float | None, sigma_n: int,
               model: Fingerprint | None, min_samples: int,
               cache: IndexCache) -> list[dict]:
    """The strike-table rows of one series (CPU work: runs on a worker thread)."""
    out = []
    settlements: dict[tuple[int, str], Settlement] = {}
    index_ts = datetime.fromtimestamp(ts, UTC)
    for m in markets:
        r = rules_mod.parse(m.rules)
        if r.index_id is not None and r.index_id != index:
            raise SeriesFailed(f"{m.ticker} settles on {r.index_id}, not {index}")
        close = int(m.close.timestamp())
        key = (close, str(r.window_sec))
        st = settlements.get(key)
        if st is None:
            tau = close - ts
            obs_sum, obs_n = cache.window(close - r.window_sec, ts) if tau < r.window_sec \
                else (0.0, 0)
            st = settlements[key] = Settlement(r.window_sec, tau, obs_sum, obs_n)
        prob = price_strike(price, m.strike, st, momentum, sigma, sigma_n, model, min_samples)
        if prob is None:
            raise SeriesFailed(f"{m.ticker}: no model cell and no realised volatility")
        p = prob.p
        out.append({
            "market_ticker": m.ticker, "series_ticker": m.ticker.split("-", 1)[0],
            "event_ticker": m.event_ticker, "computed_at": clock.now(),
            "close_time": m.close, "index_name": index, "index_ts": index_ts,
            "strike": d(m.strike), "index_price": d(price), "momentum": d(momentum),
            "buffer": d(price - m.strike), "buffer_pct": d((price - m.strike) / price * 100),
            "probability": d(p, 6), "prob_source": prob.source, "sample_size": prob.n,
            "model_version": model.version if model is not None and prob.source ==
            "fingerprint" else None,
            "yes_ask": d(m.yes_ask, 4), "no_ask": d(m.no_ask, 4),
            "yes_diff_cents": d((p - m.yes_ask) * 100, 4) if m.yes_ask is not None else None,
            "no_diff_cents": d((1 - p - m.no_ask) * 100, 4) if m.no_ask is not None else None,
            "volume": d(m.volume, 2), "active_side": "no" if m.strike > price else "yes",
            "time_to_close_sec": st.tau, "window_sec": st.window,
            "window_progress": d(st.progress, 4), "window_avg": d(st.running_avg),
        })
    return out


def watch_rows(r: dict, s: Settings) -> list[tuple]:
    """The (market, side) pairs of one strike-table row that pass the watchlist filters."""
    out = []
    p = float(r["probability"])
    vol = float(r["volume"]) if r["volume"] is not None else None
    if s.watchlist_min_volume > 0 and (vol is None or vol < s.watchlist_min_volume):
        return out
    for side, prob, ask in (("yes", p, r["yes_ask"]), ("no", 1 - p, r["no_ask"])):
        if ask is None:
            continue
        a = float(ask)
        diff = (prob - a) * 100
        if prob >= s.watchlist_min_probability and a <= s.watchlist_max_ask \
                and diff >= s.watchlist_min_diff_cents:
            out.append((r["market_ticker"], side, r["series_ticker"], d(prob, 6), ask,
                        d(diff, 4), r["volume"]))
    return out
