"""The simulated world: seeded index price processes (BTC's BRTI, ETH's ETHUSD_RTI), hourly
series of markets on them, their schedule (open, close, settle) and the liquidity that trades
them.

Each index publishes one value per simulated second (the `cfbenchmarks_value` channel carries
it; `cfbenchmarks_value_5hz` also carries four values in between, every 200 ms); a market
settles on the simple average of its index's published values over the 60 seconds before
close, (close - 60 s, close], as its rules text says.

Time is simulated: `step()` advances one simulated second. Everything in a step depends
only on the seed and the state, so two worlds with one seed walk the same path.
`run()` steps the world against the wall clock times a speed factor (speed 0: manual).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from app.sim.accounts import stable_uuid
from app.sim.candles import Candles
from app.sim.liquidity import MarketMaker, NoiseFlow, fair_value
from app.sim.market import ACTIVE, CLOSED, FINALIZED, INITIALIZED, Event, Market, Series
from app.sim.matching import YES
from app.sim.venue import Exchange
from app.sim.views import price_ranges, rules_primary, top

HOUR_MS = 3_600_000
try:
    _ET = ZoneInfo("America/New_York")
except Exception:  # pragma: no cover - tzdata missing
    _ET = UTC


FAST_STEPS = 5  # cfbenchmarks_value_5hz: five values a second, the last on the whole second


@dataclass
class Index:
    """One settlement index: its value, the last 60 published values, a history.

    The value moves once a simulated second (its own random stream). The next second's
    move is drawn a second ahead, so the four values between two seconds (for the 5 Hz
    channel, every 200 ms) can be published as they fall due: a Brownian bridge, from a
    stream of its own, between this second's value and the next. The per-second path is
    the same as without them."""

    index_id: str
    value: float
    vol: float  # annualised
    rng: random.Random
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=60))
    history: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=7200))
    paused: bool = False  # publishing stopped through the control API (the world moves on)
    fast_rng: random.Random | None = None
    next_z: float | None = None
    fast: deque[tuple[int, float]] = field(default_factory=deque)  # (ts_ms, value) due

    DT = 1.0 / (365 * 86_400)

    def _z(self) -> float:
        if self.next_z is None:
            self.next_z = self.rng.gauss(0.0, 1.0)
        z, self.next_z = self.next_z, self.rng.gauss(0.0, 1.0)
        return z

    def _log_move(self, z: float) -> float:
        v = self.vol
        return -0.5 * v * v * self.DT + v * math.sqrt(self.DT) * z

    def move(self, now_ms: int) -> None:
        self.value = round(self.value * math.exp(self._log_move(self._z())), 2)
        self.samples.append(self.value)
        self.history.append((now_ms, self.value))
        self._bridge(now_ms)

    def _bridge(self, now_ms: int) -> None:
        """The values due every 200 ms until the next second, ending at its value."""
        if self.fast_rng is None:  # seeded from the index's stream without drawing from it
            self.fast_rng = random.Random(self.rng.getstate()[1][0])
        assert self.next_z is not None
        total = self._log_move(self.next_z)
        sub = self.vol * math.sqrt(self.DT / FAST_STEPS)
        x = 0.0
        self.fast.clear()
        for k in range(1, FAST_STEPS):
            left = FAST_STEPS - k + 1  # steps from x's point to the next second
            x += (total - x) / left + sub * math.sqrt((left - 1) / left) * \
                self.fast_rng.gauss(0.0, 1.0)
            self.fast.append((now_ms + k * 1000 // FAST_STEPS,
                              round(self.value * math.exp(x), 2)))

    def due(self, upto_ms: float) -> list[tuple[int, float]]:
        """The sub-second values whose time has come (each handed out once)."""
        out = []
        while self.fast and self.fast[0][0] <= upto_ms:
            out.append(self.fast.popleft())
        return out

    def window_average(self) -> float:
        return sum(self.samples) / len(self.samples)


BTC_INDEX = "BRTI"
ETH_INDEX = "ETHUSD_RTI"


@dataclass
class WorldParams:
    seed: int = 1
    start_ms: int | None = None  # simulated epoch; None: the wall clock at creation
    spot: float = 100_000.0
    vol: float = 0.5  # annualised
    strike_step: int = 250
    above_strikes: int = 11
    range_buckets: int = 10
    settle_delay_s: int = 60
    keep_settled_events: int = 48
    mm_levels: int = 5
    mm_half_spread: int = 2
    mm_size: int = 100
    flow_rate_per_s: float = 0.02
    # the second index and its hourly above/below series (KXETHD)
    eth_series: bool = True
    eth_spot: float = 3_500.0
    eth_vol: float = 0.65
    eth_strike_step: int = 20
    # weekly trading pause in ET (Kalshi: Thursdays 03:00-05:00); weekday 0 = Monday,
    # None = no pause; start and end in minutes after midnight ET
    maintenance_weekday: int | None = 3
    maintenance_start_min: int = 180
    maintenance_end_min: int = 300


class World:
    def __init__(self, params: WorldParams | None = None) -> None:
        self.p = p = params or WorldParams()
        start = p.start_ms if p.start_ms is not None else int(time.time() * 1000)
        self.now_ms = start - start % 1000
        self.started_ms = self.now_ms
        self.ticks = 0
        self.exchange = Exchange(clock=lambda: self.now_ms, salt=p.seed)
        self.candles = Candles(self.exchange.books)
        self.exchange.observers.append(self.candles)
        self.indices: dict[str, Index] = {
            BTC_INDEX: Index(BTC_INDEX, p.spot, p.vol, random.Random(p.seed * 7919 + 1))}
        if p.eth_series:
            self.indices[ETH_INDEX] = Index(ETH_INDEX, p.eth_spot, p.eth_vol,
                                            random.Random(p.seed * 7919 + 5))
        for ix in self.indices.values():
            ix.samples.append(ix.value)
        self.mm = MarketMaker(self.exchange, random.Random(p.seed * 7919 + 2), p.mm_levels,
                              p.mm_half_spread, p.mm_size)
        self.flow = NoiseFlow(self.exchange, random.Random(p.seed * 7919 + 3),
                              p.flow_rate_per_s)
        # the ETH markets trade with liquidity of their own (own random streams), so adding
        # them leaves every BTC market exactly as it was for a given seed
        self.mm_eth = MarketMaker(self.exchange, random.Random(p.seed * 7919 + 6), p.mm_levels,
                                  p.mm_half_spread, p.mm_size)
        self.flow_eth = NoiseFlow(self.exchange, random.Random(p.seed * 7919 + 7),
                                  p.flow_rate_per_s)
        self._live: list[Event] = []
        self._settled: deque[str] = deque()
        self._settle_values: dict[str, float] = {}
        self.halted = False  # trading halted through the control API
        self._marks: dict[str, deque[tuple[int, int, int]]] = {}  # minute price marks
        self._window: tuple[int, int] | None = None
        # the above/below series quotes sub-cent ticks in its tails
        for s in (Series("KXBTCD", "Bitcoin price above/below (hourly, simulated)",
                         price_level_structure="tapered_deci_cent", created_ms=self.now_ms),
                  # the range series charges makers too (Kalshi's maker-fee schedule)
                  Series("KXBTC", "Bitcoin price range (hourly, simulated)",
                         fee_type="quadratic_with_maker_fees", created_ms=self.now_ms)):
            self.exchange.add_series(s)
        if p.eth_series:
            self.exchange.add_series(Series("KXETHD", "Ethereum price above/below (hourly, "
                                            "simulated)", tags=["ETH"], index_id=ETH_INDEX,
                                            created_ms=self.now_ms))
        self.sync_trading()
        self._schedule()
        self._liquidity()

    # --- the BTC index under its old names (control API, tests) ---------------------
    @property
    def spot(self) -> float:
        return self.indices[BTC_INDEX].value

    @spot.setter
    def spot(self, value: float) -> None:
        self.indices[BTC_INDEX].value = value

    @property
    def samples(self) -> deque[float]:
        return self.indices[BTC_INDEX].samples

    @property
    def price_history(self) -> deque[tuple[int, float]]:
        return self.indices[BTC_INDEX].history

    def index_of(self, m: Market) -> Index:
        s = self.exchange.series.get(m.series_ticker)
        return self.indices[s.index_id if s else BTC_INDEX]

    # --- trading hours ------------------------------------------------------------
    def maintenance_window(self, at_ms: int | None = None) -> tuple[int, int] | None:
        """(start, end) ms of the weekly pause that contains or follows `at_ms`."""
        p = self.p
        if p.maintenance_weekday is None:
            return None
        at = at_ms if at_ms is not None else self.now_ms
        et = datetime.fromtimestamp(at / 1000, tz=_ET)
        day = et.replace(hour=0, minute=0, second=0, microsecond=0)
        for k in range(-1, 8):
            d = day + timedelta(days=k)
            if d.weekday() != p.maintenance_weekday:
                continue
            s_ms = _et_ms(d, p.maintenance_start_min)
            e_ms = _et_ms(d, p.maintenance_end_min)
            if e_ms > at:
                return s_ms, e_ms
        return None

    def in_maintenance(self) -> bool:
        w = self._window
        if w is None or self.now_ms >= w[1] or self.now_ms < w[0] - 8 * 86_400_000:
            w = self._window = self.maintenance_window()
        return w is not None and w[0] <= self.now_ms < w[1]

    def sync_trading(self) -> None:
        """Trading is active unless halted or inside the weekly maintenance window."""
        self.exchange.set_trading(not self.halted and not self.in_maintenance())

    # --- time -----------------------------------------------------------------
    def step(self) -> None:
        self.now_ms += 1000
        self.ticks += 1
        self._move_price()
        self.sync_trading()
        self._schedule()
        self.exchange.expire(self.now_ms)
        self._liquidity()
        self._mark_prices()
        self._sample_candles()

    def advance(self, seconds: int) -> None:
        for _ in range(seconds):
            self.step()

    async def order_latency(self) -> None:
        """The time an order takes to reach the exchange (the replay world's setting; none
        here)."""

    async def run(self, speed: float, tick_s: float = 0.05, max_steps: int = 2000) -> None:
        """Keep the simulated clock at wall time x speed until cancelled."""
        if speed <= 0:
            return
        wall0 = time.monotonic()
        sim0 = self.now_ms
        while True:
            await asyncio.sleep(tick_s)
            target = sim0 + (time.monotonic() - wall0) * speed * 1000
            n = 0
            while self.now_ms + 1000 <= target and n < max_steps:
                self.step()
                n += 1
            if n == max_steps:  # fell behind: drop the backlog rather than spiral
                wall0 = time.monotonic()
                sim0 = self.now_ms
            self.publish_fast(target)

    # --- price ----------------------------------------------------------------
    def _move_price(self) -> None:
        self.publish_fast(self.now_ms)  # what is left of the second that ends now
        for ix in self.indices.values():
            ix.move(self.now_ms)
            if ix.paused:
                continue
            for obs in self.exchange.observers:
                obs.index_value(ix.index_id, self.now_ms, ix.value, ix.history)

    def publish_fast(self, upto_ms: float) -> None:
        """The 5 Hz channel's values between seconds, each once its time has come (on the
        wall clock under ``run()``; all of a second's at its end when stepped by hand)."""
        for ix in self.indices.values():
            due = ix.due(upto_ms)
            if ix.paused:
                continue
            for ts, value in due:
                for obs in self.exchange.observers:
                    obs.index_fast_value(ix.index_id, ts, value)

    # --- schedule ---------------------------------------------------------------
    def _schedule(self) -> None:
        now = self.now_ms
        next_close = (now // HOUR_MS + 1) * HOUR_MS
        for close in (next_close, next_close + HOUR_MS):
            if not any(e.strike_ms == close for e in self._live):
                self._create_events(close)
        for event in list(self._live):
            done = True
            for t in event.markets:
                m = self.exchange.markets[t]
                if m.status == INITIALIZED and now >= m.open_ms:
                    self.exchange.open_market(m)
                if m.status == ACTIVE and now >= m.close_ms:
                    # the 60 published values of (close - 60 s, close]
                    self._settle_values[m.ticker] = self.index_of(m).window_average()
                    self.exchange.close_market(m)
                    self._liquidity_for(m)[0].forget(m.ticker)
                if m.status == CLOSED and now >= m.close_ms + self.p.settle_delay_s * 1000:
                    value = round(self._settle_values.pop(m.ticker, self.index_of(m).value), 2)
                    result = YES if m.wins(value) else "no"
                    self.exchange.settle_market(m, result, f"{value:.2f}")
                done = done and m.status == FINALIZED
            if done:
                self._live.remove(event)
                self._settled.append(event.event_ticker)
                while len(self._settled) > self.p.keep_settled_events:
                    self.exchange.remove_event(self._settled.popleft())

    def _create_events(self, close_ms: int) -> None:
        p = self.p
        now = self.now_ms
        open_ms = close_ms - HOUR_MS
        et = datetime.fromtimestamp(close_ms / 1000, tz=_ET)
        code = et.strftime("%y%b%d%H").upper()
        label = et.strftime("%-I%p").lower() + " " + (et.tzname() or "UTC")
        day = et.strftime("%b %-d, %Y")
        step = p.strike_step
        center = round(self.spot / step) * step
        # "above" markets
        ev = Event(f"KXBTCD-{code}", "KXBTCD", f"Bitcoin price today at {label}?",
                   f"{day} at {label}", close_ms, False, now)
        markets = []
        for k in range(p.above_strikes):
            strike = center + step * (k - p.above_strikes // 2)
            floor = strike - 0.01
            ticker = f"{ev.event_ticker}-T{floor:.2f}"
            markets.append(self._market(ticker, ev, "greater", floor, None,
                                        f"${strike:,} or above", f"Below ${strike:,}",
                                        open_ms, close_ms))
        self._add(ev, markets)
        # range markets
        ev = Event(f"KXBTC-{code}", "KXBTC", f"Bitcoin price range today at {label}?",
                   f"{day} at {label}", close_ms, True, now)
        markets = []
        lo0 = center - step * (p.range_buckets // 2)
        for k in range(p.range_buckets):
            lo = lo0 + step * k
            cap = lo + step - 0.01
            ticker = f"{ev.event_ticker}-B{lo + step // 2}"
            markets.append(self._market(ticker, ev, "between", float(lo), cap,
                                        f"${lo:,} to ${cap:,.2f}",
                                        f"Not ${lo:,} to ${cap:,.2f}", open_ms, close_ms))
        self._add(ev, markets)
        if p.eth_series:
            self._create_eth_event(close_ms, code, label, day)

    def _create_eth_event(self, close_ms: int, code: str, label: str, day: str) -> None:
        p = self.p
        step = p.eth_strike_step
        center = round(self.indices[ETH_INDEX].value / step) * step
        ev = Event(f"KXETHD-{code}", "KXETHD", f"Ethereum price today at {label}?",
                   f"{day} at {label}", close_ms, False, self.now_ms)
        markets = []
        for k in range(p.above_strikes):
            strike = center + step * (k - p.above_strikes // 2)
            floor = strike - 0.01
            markets.append(self._market(f"{ev.event_ticker}-T{floor:.2f}", ev, "greater", floor,
                                        None, f"${strike:,} or above", f"Below ${strike:,}",
                                        close_ms - HOUR_MS, close_ms))
        self._add(ev, markets)

    def _market(self, ticker: str, ev: Event, strike_type: str, floor: float,
                cap: float | None, yes_sub: str, no_sub: str, open_ms: int,
                close_ms: int) -> Market:
        series = self.exchange.series[ev.series_ticker]
        return Market(ticker, ev.event_ticker, ev.series_ticker, stable_uuid("market", ticker),
                      f"{ev.title} {yes_sub}", yes_sub, no_sub, strike_type, floor, cap,
                      self.now_ms, open_ms, close_ms, 0, updated_ms=self.now_ms,
                      price_level_structure=series.price_level_structure,
                      index_id=series.index_id)

    def _add(self, ev: Event, markets: list[Market]) -> None:
        self.exchange.add_event(ev, markets)
        self._live.append(ev)
        announce(self.exchange, ev, markets)
        if self.now_ms >= markets[0].open_ms:
            for m in markets:
                self.exchange.open_market(m)

    # --- previous prices ------------------------------------------------------------
    def _mark_prices(self) -> None:
        """Each minute, note every open market's (yes bid, yes ask, last price); a market's
        previous_* prices are the mark an hour ago (the first mark while it is younger)."""
        minute = self.now_ms % 60_000 == 0
        for event in self._live:
            for t in event.markets:
                if not minute and t in self._marks:
                    continue
                m = self.exchange.markets[t]
                if m.status != ACTIVE:
                    continue
                yb, _, ya, _ = top(self.exchange.books.get(t))
                marks = self._marks.setdefault(t, deque(maxlen=61))
                marks.append((yb, ya, m.last_price))
                m.previous = marks[0]
        if minute:
            for t in [t for t in self._marks if t not in self.exchange.markets]:
                del self._marks[t]

    def _sample_candles(self) -> None:
        for event in self._live:
            for t in event.markets:
                m = self.exchange.markets[t]
                if m.status == ACTIVE:
                    self.candles.sample(m, self.exchange.books.get(t), self.now_ms)
        if self.now_ms % 3_600_000 == 0:
            self.candles.forget(set(self.exchange.markets))

    # --- liquidity ----------------------------------------------------------------
    def _liquidity(self) -> None:
        for event in self._live:
            for t in event.markets:
                m = self.exchange.markets[t]
                if m.status != ACTIVE or not self.exchange.trading_active:
                    continue
                ix = self.index_of(m)
                mm, flow = self._liquidity_for(m)
                mm.quote(m, fair_value(m, ix.value, self.now_ms, ix.vol), self.ticks)
                flow.step(m)

    def _liquidity_for(self, m: Market) -> tuple[MarketMaker, NoiseFlow]:
        if m.index_id == ETH_INDEX:
            return self.mm_eth, self.flow_eth
        return self.mm, self.flow


def announce(exchange: Exchange, ev: Event, markets: list[Market]) -> None:
    """The lifecycle channel's news of a new event and its markets."""
    for obs in exchange.observers:
        obs.lifecycle({"event_ticker": ev.event_ticker, "series_ticker": ev.series_ticker,
                       "title": ev.title, "subtitle": ev.sub_title,
                       "collateral_return_type": "", "exchange_index": 0,
                       "strike_date": ev.strike_ms // 1000}, kind="event_lifecycle")
        for m in markets:
            obs.lifecycle(_created_msg(m, ev))


def _et_ms(day: datetime, minutes: int) -> int:
    """Unix ms of `minutes` after midnight ET on `day` (wall time, so DST is respected)."""
    extra = timedelta(days=1) if minutes >= 1440 else timedelta(0)
    minutes %= 1440
    at = (day + extra).replace(hour=minutes // 60, minute=minutes % 60)
    return int(at.timestamp() * 1000)


def _created_msg(m: Market, ev: Event) -> dict:
    meta = {
        "name": m.title, "title": m.title, "yes_sub_title": m.yes_sub_title,
        "no_sub_title": m.no_sub_title, "rules_primary": rules_primary(m), "rules_secondary": "",
        "can_close_early": False, "event_ticker": ev.event_ticker,
        "expected_expiration_ts": m.close_ms // 1000, "strike_type": m.strike_type,
    }
    if m.floor_strike is not None:
        meta["floor_strike"] = m.floor_strike
    if m.cap_strike is not None:
        meta["cap_strike"] = m.cap_strike
    return {"market_ticker": m.ticker, "event_type": "created", "exchange_index": 0,
            "open_ts": m.open_ms // 1000, "close_ts": m.close_ms // 1000,
            "additional_metadata": meta, "price_level_structure": m.price_level_structure,
            "price_ranges": price_ranges(m)}
