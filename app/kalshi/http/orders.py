"""Orders: V2 writes under ``/portfolio/events/orders`` (exactly once by client_order_id),
reads of the order book of the account."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

from app.kalshi.direction import to_book
from app.kalshi.errors import (
    KalshiConflict,
    KalshiNotFound,
    KalshiRejected,
    parse_error_body,
)
from app.kalshi.http.base import LEGACY_ORDERS, ORDERS_V2, log
from app.kalshi.http.market import MarketData
from app.kalshi.http.retry import IDEMPOTENT, UNSAFE
from app.kalshi.models import (
    AmendAck,
    BatchCancelItem,
    BatchCreateItem,
    CancelAck,
    DecreaseAck,
    HistoricalCutoff,
    Order,
    OrderAck,
    Page,
    fmt_count,
    fmt_dollars,
    to_decimal,
)

TIME_IN_FORCE = ("good_till_canceled", "immediate_or_cancel", "fill_or_kill")
SELF_TRADE_PREVENTION = ("taker_at_cross", "maker")
A = TypeVar("A")
CancelRef = str | tuple[str, str]  # order_id, or (order_id, market_ticker) for auto-routing


def _ack(model: type[A], data: Any, what: str) -> A:
    """An order write's answer as ``model``. A success that carries no order (no order_id:
    e.g. the 410 ``deprecated_v1_order_endpoint`` inside a 2xx body) is a rejection."""
    if isinstance(data, dict) and data.get("order_id"):
        return model.model_validate(data)
    raise _rejected(data, what)


def _rejected(data: Any, what: str) -> KalshiRejected:
    body = parse_error_body(data)
    detail = f" ({body.code}: {body.message})" if body.code or body.message else ""
    return KalshiRejected(f"{what}: a success answer without an order{detail}", body=body,
                          raw=data)


def _items(model: type[A], data: Any, what: str) -> list[A]:
    """The items of a batch answer; an answer without its ``orders`` list is a rejection, an
    item with neither an order nor an error is that item's rejection."""
    rows = data.get("orders") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise _rejected(data, what)
    return [model.model_validate(_order_or_error(x)) for x in rows]


NO_ORDER = {"code": "no_order_in_answer", "message": "the answer carries no order"}


def _order_or_error(item: Any) -> dict[str, Any]:
    """A batch item as answered when it names an order or an error, else that item's error."""
    if isinstance(item, dict) and (item.get("order_id") or item.get("error")):
        return item
    return {**(item if isinstance(item, dict) else {}), "error": NO_ORDER}


def _is_duplicate(item: BatchCreateItem) -> bool:
    return item.error is not None and item.error.code == "order_already_exists"


def positive_count(value: int | Decimal | str, what: str = "count") -> str:
    qty = to_decimal(value)
    if qty <= 0:
        raise ValueError(f"{what} must be positive, not {value!r}")
    return fmt_count(qty)


def order_body(
    ticker: str,
    side: str,
    action: str,
    count: int | Decimal | str,
    price: Decimal | str,
    *,
    client_order_id: str | None = None,
    time_in_force: str = "good_till_canceled",
    self_trade_prevention_type: str = "taker_at_cross",
    post_only: bool | None = None,
    reduce_only: bool | None = None,
    expiration_time: int | None = None,
    order_group_id: str | None = None,
    cancel_order_on_pause: bool | None = None,
    subaccount: int | None = None,
    exchange_index: int | None = None,
) -> dict[str, Any]:
    """A CreateOrderV2Request body from rec's view of an order.

    ``side`` (yes/no) and ``action`` (buy/sell) with ``price`` in that side's
    dollars become the YES-book ``side`` (bid/ask) and YES ``price``
    (:func:`app.kalshi.direction.to_book`). A client_order_id is generated when
    none is given, so every order can be retried safely.
    """
    quote_ = to_book(side, action, price)
    if time_in_force not in TIME_IN_FORCE:
        raise ValueError(f"time_in_force must be one of {', '.join(TIME_IN_FORCE)}")
    if self_trade_prevention_type not in SELF_TRADE_PREVENTION:
        raise ValueError(
            f"self_trade_prevention_type must be one of {', '.join(SELF_TRADE_PREVENTION)}"
        )
    body: dict[str, Any] = {
        "ticker": ticker,
        "client_order_id": client_order_id or str(uuid.uuid4()),
        "side": quote_.book_side,
        "count": positive_count(count),
        "price": fmt_dollars(quote_.price),
        "time_in_force": time_in_force,
        "self_trade_prevention_type": self_trade_prevention_type,
    }
    optional = {
        "post_only": post_only,
        "reduce_only": reduce_only,
        "expiration_time": expiration_time,
        "order_group_id": order_group_id,
        "cancel_order_on_pause": cancel_order_on_pause,
        "subaccount": subaccount,
        "exchange_index": exchange_index,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


class Orders(MarketData):
    # ------------------------------------------------------------------ orders (V2 writes)

    async def create_order(
        self,
        ticker: str,
        side: str,
        action: str,
        count: int | Decimal | str,
        price: Decimal | str,
        **kw: Any,
    ) -> OrderAck:
        """Place an order: buy/sell ``side`` (yes/no) at ``price`` in that side's dollars.

        Keywords as :func:`order_body`. Retried after an unknown outcome with the
        same client_order_id; if the exchange then answers 409 (it already has
        that id), the order is looked up by its client_order_id and returned
        (``recovered=True``), so one call never makes two orders.
        """
        return await self.submit_order(order_body(ticker, side, action, count, price, **kw))

    async def submit_order(self, body: dict[str, Any]) -> OrderAck:
        """POST a prepared CreateOrderV2Request body (must carry client_order_id)."""
        coid = body.get("client_order_id")
        if not coid:
            raise ValueError("an order needs a client_order_id to be retried safely")
        await self.check_price(body["ticker"], body["price"])
        try:
            data, _ = await self._post_with_same_ids(ORDERS_V2, body)
        except KalshiConflict as exc:
            if exc.after_unknown_outcome:
                found = await self.find_order_by_client_id(coid, ticker=body["ticker"])
                if found is not None:
                    log.info("order %s already accepted by an earlier attempt", coid)
                    return OrderAck.from_order(found)
            raise
        return _ack(OrderAck, data, f"POST {ORDERS_V2} (order {coid})")

    async def _post_with_same_ids(self, path: str, body: Any) -> tuple[Any, bool]:
        """POST order creation(s), repeating the same body (same client_order_ids).

        Retried like a read: every order in it carries a client_order_id, so the
        exchange recognises a repeat (a 409 is never repeated). Returns the answer and
        whether an earlier attempt ended with an unknown outcome; an error raised after
        such an attempt has ``after_unknown_outcome`` set.
        """
        return await self._with_retries("POST", path, None, body, IDEMPOTENT)

    async def find_order_by_client_id(
        self, client_order_id: str, *, ticker: str | None = None
    ) -> Order | None:
        """The order whose client_order_id is ``client_order_id`` (None if there is none).

        The list endpoint cannot filter by client_order_id; ``ticker`` narrows the
        listing, the match is always on the client_order_id itself.
        """
        async for order in self.iter_orders(ticker=ticker, limit=200):
            if order.client_order_id == client_order_id:
                return order
        return None

    async def get_order(self, order_id: str) -> Order:
        data = await self._get(f"{LEGACY_ORDERS}/{quote(order_id, safe='')}")
        return Order.model_validate(data["order"])

    async def get_orders(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        status: str | None = None,
        min_ts: int | None = None,
        max_ts: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        subaccount: int | None = None,
    ) -> Page[Order]:
        data = await self._get(
            LEGACY_ORDERS,
            ticker=ticker,
            event_ticker=event_ticker,
            status=status,
            min_ts=min_ts,
            max_ts=max_ts,
            limit=limit,
            cursor=cursor,
            subaccount=subaccount,
        )
        return self._page(data, "orders", Order)

    def iter_orders(self, **filters: Any) -> AsyncIterator[Order]:
        return self.paginate(lambda c: self.get_orders(cursor=c, **filters))

    async def get_historical_cutoff(self) -> HistoricalCutoff:
        """Where live data ends: orders canceled or executed before ``orders_updated_ts`` are
        only served by :meth:`get_historical_orders`, fills made before ``trades_created_ts``
        only by :meth:`get_historical_fills` (app/kalshi/http/portfolio.py)."""
        return HistoricalCutoff.model_validate(await self._get("/historical/cutoff"))

    async def get_historical_orders(self, **filters: Any) -> Page[Order]:
        """One page of archived orders (older than the cutoff: about two weeks); filters as
        the spec's: ticker, min_ts, max_ts, limit, cursor, subaccount."""
        return self._page(await self._get("/historical/orders", **filters), "orders", Order)

    def iter_historical_orders(self, **filters: Any) -> AsyncIterator[Order]:
        return self.paginate(lambda c: self.get_historical_orders(cursor=c, **filters))

    async def cancel_order(
        self,
        order_id: str,
        *,
        ticker: str | None = None,
        subaccount: int | None = None,
        exchange_index: int | None = None,
    ) -> CancelAck:
        """Cancel a resting order (V2); retried like a read, since cancelling twice is harmless.

        ``ticker`` lets the exchange route the cancel to the market's shard. When
        an earlier attempt may have cancelled the order and the retry then
        answers 404, the order is fetched and, if it is canceled, returned with
        ``reduced_by`` None (unknown).
        """
        path = f"{ORDERS_V2}/{quote(order_id, safe='')}"
        params = {
            "market_ticker": ticker,
            "subaccount": subaccount,
            "exchange_index": exchange_index,
        }
        try:
            data = await self.request("DELETE", path, params=params)
        except KalshiNotFound as exc:
            if not exc.after_unknown_outcome:
                raise
            order = await self.get_order(order_id)
            if order.status != "canceled":
                raise
            return CancelAck(order_id=order.order_id, client_order_id=order.client_order_id)
        return _ack(CancelAck, data, f"DELETE {path}")

    async def cancel_all_orders(self, *, subaccount: int | None = None) -> None:
        """Cancel every resting order (of ``subaccount`` when given) on every shard."""
        await self.request("DELETE", ORDERS_V2, params={"subaccount": subaccount})

    async def amend_order(
        self,
        order_id: str,
        *,
        ticker: str,
        side: str,
        action: str,
        price: Decimal | str,
        count: int | Decimal | str,
        client_order_id: str | None = None,
        updated_client_order_id: str | None = None,
        expiration_time: int | None = None,
        subaccount: int | None = None,
        exchange_index: int | None = None,
    ) -> AmendAck:
        """Change price and/or size (never retried after an unknown outcome).

        ``side``/``action``/``price`` as for :meth:`create_order`; ``count`` is the
        new total (already filled + desired resting), as Kalshi defines it.
        """
        quote_ = to_book(side, action, price)
        await self.check_price(ticker, quote_.price)
        body: dict[str, Any] = {
            "ticker": ticker,
            "side": quote_.book_side,
            "price": fmt_dollars(quote_.price),
            "count": positive_count(count),
        }
        optional = {
            "client_order_id": client_order_id,
            "updated_client_order_id": updated_client_order_id,
            "expiration_time": expiration_time,
            "exchange_index": exchange_index,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        data = await self.request(
            "POST",
            f"{ORDERS_V2}/{quote(order_id, safe='')}/amend",
            params={"subaccount": subaccount},
            json=body,
            safety=UNSAFE,
        )
        return _ack(AmendAck, data, f"amend of order {order_id}")

    async def decrease_order(
        self,
        order_id: str,
        *,
        reduce_by: int | Decimal | str | None = None,
        reduce_to: int | Decimal | str | None = None,
        ticker: str | None = None,
        subaccount: int | None = None,
        exchange_index: int | None = None,
    ) -> DecreaseAck:
        if (reduce_by is None) == (reduce_to is None):
            raise ValueError("give exactly one of reduce_by or reduce_to")
        body: dict[str, Any] = {}
        if reduce_by is not None:
            body["reduce_by"] = positive_count(reduce_by, "reduce_by")
        if reduce_to is not None:
            qty = to_decimal(reduce_to)
            if qty < 0:
                raise ValueError(f"reduce_to must not be negative, not {reduce_to!r}")
            body["reduce_to"] = fmt_count(qty)
        if ticker is not None:
            body["market_ticker"] = ticker
        if exchange_index is not None:
            body["exchange_index"] = exchange_index
        data = await self.request(
            "POST",
            f"{ORDERS_V2}/{quote(order_id, safe='')}/decrease",
            params={"subaccount": subaccount},
            json=body,
            safety=UNSAFE,
        )
        return _ack(DecreaseAck, data, f"decrease of order {order_id}")

    async def batch_create_orders(self, orders: list[dict[str, Any]]) -> list[BatchCreateItem]:
        """POST /portfolio/events/orders/batched with bodies from :func:`order_body`.

        Every price is checked before anything is sent; the answer has one item
        per order, in order, each with the order's ids or its error. Like
        :meth:`create_order`, the batch is repeated with the same client_order_ids
        after an unknown outcome, and items the exchange then refuses as duplicates
        are looked up by client_order_id (``recovered=True``).
        """
        for body in orders:
            if not body.get("client_order_id"):
                raise ValueError("every order in a batch needs a client_order_id")
            await self.check_price(body["ticker"], body["price"])
        data, ambiguous = await self._post_with_same_ids(f"{ORDERS_V2}/batched",
                                                         {"orders": orders})
        items = _items(BatchCreateItem, data, f"POST {ORDERS_V2}/batched")
        if ambiguous:
            for n, (body, item) in enumerate(zip(orders, items, strict=False)):
                if _is_duplicate(item):
                    found = await self.find_order_by_client_id(
                        body["client_order_id"], ticker=body["ticker"]
                    )
                    if found is not None:
                        items[n] = BatchCreateItem.from_order(found)
        return items

    async def batch_cancel_orders(
        self, orders: Iterable[CancelRef], *, subaccount: int | None = None
    ) -> list[BatchCancelItem]:
        """DELETE /portfolio/events/orders/batched: order ids or (order_id, ticker) pairs."""
        items: list[dict[str, Any]] = []
        for ref in orders:
            oid, ticker = (ref, None) if isinstance(ref, str) else ref
            item: dict[str, Any] = {"order_id": oid}
            if ticker:
                item["market_ticker"] = ticker
            if subaccount is not None:
                item["subaccount"] = subaccount
            items.append(item)
        data = await self.request("DELETE", f"{ORDERS_V2}/batched", json={"orders": items})
        return _items(BatchCancelItem, data, f"DELETE {ORDERS_V2}/batched")
