"""Per-minute candlesticks of every market (GET .../markets/{ticker}/candlesticks).

Each simulated second samples every open market's best yes bid and ask; each trade updates
the minute's trade prices and volume. Longer periods (60, 1440 minutes) are built from the
minutes when asked. A minute's candle ends at its inclusive end second, as Kalshi's
`end_period_ts` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.sim.market import Market
from app.sim.matching import Book
from app.sim.venue import Observer, TradeRecord
from app.sim.views import top
from app.sim.wire import dollars, fp


@dataclass
class Candle:
    end_s: int
    bid: list[int]  # open, low, high, close ($0.0001)
    ask: list[int]
    trades: list[int] = field(default_factory=list)  # yes prices of the minute's trades
    volume: int = 0
    open_interest: int = 0
    previous: int | None = None  # last trade price before this candle


def _ohlc(values: list[int], new: int) -> None:
    values[1] = min(values[1], new)
    values[2] = max(values[2], new)
    values[3] = new


def _end_s(ts_ms: int, period_s: int = 60) -> int:
    return -(-ts_ms // (period_s * 1000)) * period_s


class Candles(Observer):
    def __init__(self, books: dict[str, Book]) -> None:
        self.books = books
        self.by_market: dict[str, dict[int, Candle]] = {}
        self.last_trade: dict[str, int] = {}

    def _candle(self, m: Market, ts_ms: int, book: Book | None) -> Candle:
        minutes = self.by_market.setdefault(m.ticker, {})
        end = _end_s(ts_ms)
        c = minutes.get(end)
        if c is None:
            yb, _, ya, _ = top(book)
            c = minutes[end] = Candle(end, [yb] * 4, [ya] * 4,
                                      previous=self.last_trade.get(m.ticker))
        return c

    def sample(self, m: Market, book: Book | None, ts_ms: int) -> None:
        c = self._candle(m, ts_ms, book)
        yb, _, ya, _ = top(book)
        _ohlc(c.bid, yb)
        _ohlc(c.ask, ya)
        c.open_interest = m.open_interest

    def trade(self, market: Market, trade: TradeRecord) -> None:
        c = self._candle(market, trade.ts_ms, self.books.get(market.ticker))
        c.trades.append(trade.yes_price)
        c.volume += trade.count
        c.open_interest = market.open_interest
        self.last_trade[market.ticker] = trade.yes_price

    def forget(self, keep: set[str]) -> None:
        for t in [t for t in self.by_market if t not in keep]:
            del self.by_market[t]
            self.last_trade.pop(t, None)

    def query(self, ticker: str, start_s: int, end_s: int, period_min: int) -> list[dict]:
        period = period_min * 60
        groups: dict[int, list[Candle]] = {}
        for c in sorted(self.by_market.get(ticker, {}).values(), key=lambda c: c.end_s):
            groups.setdefault(_end_s(c.end_s * 1000, period), []).append(c)
        return [_render(end, cs) for end, cs in groups.items() if start_s <= end <= end_s]


def _render(end: int, cs: list[Candle]) -> dict:
    def dist(key: str) -> dict:
        first, last = getattr(cs[0], key), getattr(cs[-1], key)
        return {"open_dollars": dollars(first[0]),
                "low_dollars": dollars(min(getattr(c, key)[1] for c in cs)),
                "high_dollars": dollars(max(getattr(c, key)[2] for c in cs)),
                "close_dollars": dollars(last[3])}

    trades = [p for c in cs for p in c.trades]
    prev = cs[0].previous
    price: dict = {"open_dollars": None, "low_dollars": None, "high_dollars": None,
                   "close_dollars": None, "mean_dollars": None,
                   "previous_dollars": dollars(prev) if prev is not None else None}
    if trades:
        price.update(open_dollars=dollars(trades[0]), low_dollars=dollars(min(trades)),
                     high_dollars=dollars(max(trades)), close_dollars=dollars(trades[-1]),
                     mean_dollars=dollars(round(sum(trades) / len(trades))))
    return {"end_period_ts": end, "yes_bid": dist("bid"), "yes_ask": dist("ask"),
            "price": price, "volume_fp": fp(sum(c.volume for c in cs)),
            "open_interest_fp": fp(cs[-1].open_interest)}
