"""The account's portfolio: balance, positions, fills, settlements.

Since Trade API 3.32: positions are asked for by ``settlement_status`` (unsettled, the
exchange's default, settled or all; settled and all page by event and the cursor belongs to
the status), so the client always names the one it wants; fills take up to
FILL_TICKERS_MAX comma-separated tickers, and :meth:`Portfolio.iter_fills` batches longer
lists by that many.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from app.kalshi.http.base import RestBase
from app.kalshi.models import Balance, Fill, MarketPosition, Page, Positions, Settlement

SETTLEMENT_STATUSES = ("unsettled", "settled", "all")
FILL_TICKERS_MAX = 100


def _fill_tickers(ticker: str | Iterable[str] | None) -> str | None:
    """The ``ticker`` filter of GET /portfolio/fills: one ticker or up to FILL_TICKERS_MAX."""
    if ticker is None or isinstance(ticker, str):
        return ticker
    tickers = list(dict.fromkeys(ticker))
    if not tickers:
        raise ValueError("an empty list of tickers filters out every fill")
    if len(tickers) > FILL_TICKERS_MAX:
        raise ValueError(f"GET /portfolio/fills takes at most {FILL_TICKERS_MAX} tickers, not "
                         f"{len(tickers)}: iter_fills batches them")
    return ",".join(tickers)


class Portfolio(RestBase):

    async def get_balance(self) -> Balance:
        return Balance.model_validate(await self._get("/portfolio/balance"))

    async def get_positions(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        count_filter: str | None = None,
        settlement_status: str = "unsettled",
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Positions:
        """One page of positions of ``settlement_status`` (always sent: a cursor belongs to
        the status it was given for)."""
        if settlement_status not in SETTLEMENT_STATUSES:
            raise ValueError(
                f"settlement_status must be one of {', '.join(SETTLEMENT_STATUSES)}")
        data = await self._get(
            "/portfolio/positions",
            ticker=ticker,
            event_ticker=event_ticker,
            count_filter=count_filter,
            settlement_status=settlement_status,
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
        ticker: str | Iterable[str] | None = None,
        order_id: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Fill]:
        data = await self._get(
            "/portfolio/fills",
            ticker=_fill_tickers(ticker),
            order_id=order_id,
            min_ts=min_ts,
            max_ts=max_ts,
            limit=limit,
            cursor=cursor,
        )
        return self._page(data, "fills", Fill)

    async def iter_fills(self, *, ticker: str | Iterable[str] | None = None,
                         **filters: Any) -> AsyncIterator[Fill]:
        """Every fill (of ``ticker``: one ticker or any number, asked FILL_TICKERS_MAX at a
        time, each batch paged to its end)."""
        if ticker is None or isinstance(ticker, str):
            batches: list[Any] = [ticker]
        else:
            tickers = list(dict.fromkeys(ticker))
            batches = [tickers[i:i + FILL_TICKERS_MAX]
                       for i in range(0, len(tickers), FILL_TICKERS_MAX)]
        for batch in batches:
            async for fill in self.paginate(
                    lambda c, b=batch: self.get_fills(ticker=b, cursor=c, **filters)):
                yield fill

    async def get_historical_fills(self, **filters: Any) -> Page[Fill]:
        """One page of archived fills (made before the cutoff: about two weeks); filters as
        the spec's: ticker (one), min_ts, max_ts, limit, cursor, subaccount."""
        return self._page(await self._get("/historical/fills", **filters), "fills", Fill)

    def iter_historical_fills(self, **filters: Any) -> AsyncIterator[Fill]:
        return self.paginate(lambda c: self.get_historical_fills(cursor=c, **filters))

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
