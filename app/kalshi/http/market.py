"""Market data: series, events, markets, order books, public trades, and each market's price
grid (kept from every market read, checked before an order is sent)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from app.kalshi.http.base import RestBase
from app.kalshi.models import Event, EventWithMarkets, Market, Orderbook, Page, Series, Trade
from app.kalshi.prices import PriceGrid


class MarketData(RestBase):
    # ------------------------------------------------------------------ series & events

    async def get_series_list(
        self, *, category: str | None = None, tags: str | None = None, **extra: Any
    ) -> list[Series]:
        data = await self._get("/series", category=category, tags=tags, **extra)
        return [Series.model_validate(x) for x in data.get("series") or []]

    async def get_series(self, series_ticker: str) -> Series:
        data = await self._get(f"/series/{quote(series_ticker, safe='')}")
        return Series.model_validate(data["series"])

    async def get_events(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        status: str | None = None,
        series_ticker: str | None = None,
        with_nested_markets: bool | None = None,
        min_close_ts: int | None = None,
        **extra: Any,
    ) -> Page[Event]:
        data = await self._get(
            "/events",
            limit=limit,
            cursor=cursor,
            status=status,
            series_ticker=series_ticker,
            with_nested_markets=with_nested_markets,
            min_close_ts=min_close_ts,
            **extra,
        )
        return self._page(data, "events", Event)

    def iter_events(self, **filters: Any) -> AsyncIterator[Event]:
        return self.paginate(lambda c: self.get_events(cursor=c, **filters))

    async def get_event(
        self, event_ticker: str, *, with_nested_markets: bool | None = None
    ) -> EventWithMarkets:
        data = await self._get(
            f"/events/{quote(event_ticker, safe='')}", with_nested_markets=with_nested_markets
        )
        out = EventWithMarkets.model_validate(data)
        for m in [*out.markets, *(out.event.markets or [])]:
            self.remember_market(m)
        return out

    # ------------------------------------------------------------------ markets

    async def get_markets(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        event_ticker: str | None = None,
        series_ticker: str | None = None,
        status: str | None = None,
        tickers: Iterable[str] | None = None,
        min_close_ts: int | None = None,
        max_close_ts: int | None = None,
        **extra: Any,
    ) -> Page[Market]:
        data = await self._get(
            "/markets",
            limit=limit,
            cursor=cursor,
            event_ticker=event_ticker,
            series_ticker=series_ticker,
            status=status,
            tickers=list(tickers) if tickers is not None else None,
            min_close_ts=min_close_ts,
            max_close_ts=max_close_ts,
            **extra,
        )
        page = self._page(data, "markets", Market)
        for m in page.items:
            self.remember_market(m)
        return page

    def iter_markets(self, **filters: Any) -> AsyncIterator[Market]:
        return self.paginate(lambda c: self.get_markets(cursor=c, **filters))

    async def get_market(self, ticker: str) -> Market:
        data = await self._get(f"/markets/{quote(ticker, safe='')}")
        market = Market.model_validate(data["market"])
        self.remember_market(market)
        return market

    async def get_orderbook(self, ticker: str, *, depth: int | None = None) -> Orderbook:
        data = await self._get(f"/markets/{quote(ticker, safe='')}/orderbook", depth=depth)
        return Orderbook.from_response(ticker, data)

    async def get_trades(
        self,
        *,
        ticker: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
    ) -> Page[Trade]:
        data = await self._get(
            "/markets/trades",
            ticker=ticker,
            limit=limit,
            cursor=cursor,
            min_ts=min_ts,
            max_ts=max_ts,
        )
        return self._page(data, "trades", Trade)

    def iter_trades(self, **filters: Any) -> AsyncIterator[Trade]:
        return self.paginate(lambda c: self.get_trades(cursor=c, **filters))

    # ------------------------------------------------------------------ price grids

    def remember_market(self, market: Market) -> None:
        """Keep ``market``'s price grid (every market read through this client does this)."""
        if market.price_ranges or market.price_level_structure:
            self._grids[market.ticker] = PriceGrid.from_market(market)

    def set_price_grid(self, ticker: str, grid: PriceGrid) -> None:
        """E.g. from a WS ``price_level_structure_updated`` lifecycle message."""
        self._grids[ticker] = grid

    async def price_grid(self, ticker: str) -> PriceGrid:
        """The market's valid prices (read once with GET /markets/{ticker}, then kept).

        Concurrent first orders on one market share a single read.
        """
        grid = self._grids.get(ticker)
        if grid is None:
            read = self._grid_reads.get(ticker)
            if read is None:
                read = self._grid_reads[ticker] = asyncio.ensure_future(self.get_market(ticker))
                read.add_done_callback(lambda f: self._grid_reads.pop(ticker, None))
            await asyncio.shield(read)
            grid = self._grids.get(ticker) or PriceGrid.from_structure("", ticker)
        return grid

    async def check_price(self, ticker: str, yes_price: Decimal | str) -> None:
        """Raise :class:`~app.kalshi.prices.InvalidPrice` unless the market takes the price."""
        if self.validate_prices:
            (await self.price_grid(ticker)).check(yes_price)
