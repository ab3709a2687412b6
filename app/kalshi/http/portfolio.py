"""The account's portfolio: balance, positions, fills, settlements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from app.kalshi.http.base import RestBase
from app.kalshi.models import Balance, Fill, MarketPosition, Page, Positions, Settlement


class Portfolio(RestBase):
    # ------------------------------------------------------------------ portfolio

    async def get_balance(self) -> Balance:
        return Balance.model_validate(await self._get("/portfolio/balance"))

    async def get_positions(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        count_filter: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Positions:
        data = await self._get(
            "/portfolio/positions",
            ticker=ticker,
            event_ticker=event_ticker,
            count_filter=count_filter,
            limit=limit,
            cursor=cursor,
        )
        out = Positions.model_validate(data)
        out.cursor = out.cursor or None
        return out

    async def iter_market_positions(self, **filters: Any) -> AsyncIterator[MarketPosition]:
        async def fetch(cursor: str | None) -> Page[MarketPosition]:
            pos = await self.get_positions(cursor=cursor, **filters)
            return Page(items=pos.market_positions, cursor=pos.cursor)

        async for item in self.paginate(fetch):
            yield item

    async def get_fills(
        self,
        *,
        ticker: str | None = None,
        order_id: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Fill]:
        data = await self._get(
            "/portfolio/fills",
            ticker=ticker,
            order_id=order_id,
            min_ts=min_ts,
            max_ts=max_ts,
            limit=limit,
            cursor=cursor,
        )
        return self._page(data, "fills", Fill)

    def iter_fills(self, **filters: Any) -> AsyncIterator[Fill]:
        return self.paginate(lambda c: self.get_fills(cursor=c, **filters))

    async def get_settlements(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Settlement]:
        data = await self._get(
            "/portfolio/settlements",
            ticker=ticker,
            event_ticker=event_ticker,
            min_ts=min_ts,
            max_ts=max_ts,
            limit=limit,
            cursor=cursor,
        )
        return self._page(data, "settlements", Settlement)

    def iter_settlements(self, **filters: Any) -> AsyncIterator[Settlement]:
        return self.paginate(lambda c: self.get_settlements(cursor=c, **filters))
