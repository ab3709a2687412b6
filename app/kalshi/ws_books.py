"""KalshiWS's sequence checks and local order books: a gap or an inconsistent delta on
``orderbook_delta`` invalidates the books and asks for a fresh snapshot (``get_snapshot``),
falling back to unsubscribe + subscribe when none comes. With ``keep_books=False`` the books
are :class:`SyncState` (in sync or not, no levels): the consumer keeps the levels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from app.kalshi.book import BookInconsistent, OrderBook
from app.kalshi.ws_types import ORDERBOOK, Subscription, WsCommandError, WsNotConnected

log = logging.getLogger("app.kalshi.ws")


class SyncState:
    """A market's book state without its levels (KalshiWS with ``keep_books=False``): valid
    from a snapshot until a gap, a resync or a lost connection, as an OrderBook is."""

    __slots__ = ("ticker", "updates", "valid")

    def __init__(self, ticker: str) -> None:
        self.ticker = ticker
        self.valid = False
        self.updates = 0

    def apply_snapshot(self, msg: dict[str, Any]) -> None:
        self.valid = True
        self.updates += 1

    def invalidate(self) -> None:
        self.valid = False


class BookSync:
    """The book side of :class:`app.kalshi.ws.KalshiWS` (its state lives there)."""

    def _book(self, ticker: str) -> OrderBook | SyncState:
        """The market's book, made (not yet valid) when it has none."""
        book = self.books.get(ticker)
        if book is None:
            book = self.books[ticker] = (OrderBook if self.keep_books else SyncState)(ticker)
        return book

    def resync(self, ticker: str) -> bool:
        """The consumer's own book of ``ticker`` cannot take a delta (``keep_books=False``):
        invalidate the market and ask for a fresh snapshot, as for an inconsistent delta on
        KalshiWS's own book. False when no orderbook subscription covers ``ticker``."""
        for sub in self.subscriptions:
            if sub.channel == ORDERBOOK and sub.active and ticker in sub.market_tickers:
                self._start_resync(sub, [ticker])
                return True
        return False

    def _on_snapshot(self, body: dict[str, Any], sub: Subscription | None) -> bool:
        ticker = body.get("market_ticker")
        if ticker:
            self._book(ticker).apply_snapshot(body)
        return True

    def _on_delta(self, body: dict[str, Any], sub: Subscription | None) -> bool:
        """Apply a delta to its book; False (not passed on) when the book cannot take it."""
        ticker = body.get("market_ticker")
        book = self.books.get(ticker) if ticker else None
        if book is None or not book.valid:
            self.stats.dropped_deltas += 1
            return False
        if not self.keep_books:  # the consumer's own book checks it (:meth:`resync`)
            return True
        try:
            book.apply_delta(body)
        except BookInconsistent as exc:
            log.warning("kalshi ws: %s; resyncing", exc)
            if sub is not None:
                self._start_resync(sub, [ticker])
            return False
        return True

    def _check_seq(self, sub: Subscription, seq: int, mtype: str) -> bool:
        """True if the message is next in sequence (or acceptable after a gap)."""
        last = sub.last_seq
        if last is not None and seq <= last:
            self.stats.duplicates += 1
            return False
        sub.last_seq = seq
        if last is None or seq == last + 1:
            return True
        self.stats.seq_gaps += 1
        log.warning(
            "kalshi ws: %s sid %s: seq gap, expected %d got %d", sub.channel, sub.sid, last + 1, seq
        )
        self._emit(
            "client.seq_gap",
            {"channel": sub.channel, "expected": last + 1, "got": seq},
            sid=sub.sid,
        )
        if sub.channel == ORDERBOOK:
            self._start_resync(sub, sub.market_tickers)
            # the message after the gap is still good if it is a full snapshot
            return mtype == "orderbook_snapshot"
        return True

    # ------------------------------------------------------------------ resync

    def _start_resync(self, sub: Subscription, tickers: list[str]) -> None:
        for t in tickers:
            if t in self.books:
                self.books[t].invalidate()
        if sub.resyncing:
            return
        sub.resyncing = True
        task = asyncio.create_task(self._resync(sub, tickers), name="kalshi-ws-resync")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resync(self, sub: Subscription, tickers: list[str]) -> None:
        self.stats.resyncs += 1
        try:
            ok = False
            if sub.sid is not None:
                try:
                    fut = await self._send_command(
                        "update_subscription",
                        {"sids": [sub.sid], "action": "get_snapshot", "market_tickers": tickers},
                        sub,
                    )
                    ok = await self._wait_books(tickers, fut)
                except (WsCommandError, WsNotConnected, TimeoutError) as exc:
                    log.warning("kalshi ws: get_snapshot failed: %s", exc)
            if not ok and sub.active and self.connected.is_set():
                log.warning("kalshi ws: resubscribing %s to rebuild books", sub.channel)
                self.stats.resubscribes += 1
                old_sid = sub.sid
                if old_sid is not None:
                    self._by_sid.pop(old_sid, None)
                    with contextlib.suppress(WsCommandError, WsNotConnected, TimeoutError):
                        await self.command("unsubscribe", {"sids": [old_sid]})
                await self._send_subscribe(sub)
                ok = await self._wait_books(tickers, None)
            if ok:
                self._emit("client.resynced", {"channel": sub.channel, "tickers": tickers})
        except (WsNotConnected, WsCommandError, TimeoutError) as exc:
            log.warning("kalshi ws: resync of %s failed: %s", sub.channel, exc)
        finally:
            sub.resyncing = False

    async def _wait_books(
        self, tickers: list[str], fut: asyncio.Future[dict[str, Any]] | None
    ) -> bool:
        """Wait until every book in ``tickers`` is valid again; False on timeout/error."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.snapshot_timeout
        while loop.time() < deadline:
            if fut is not None and fut.done() and fut.exception() is not None:
                raise fut.exception()  # type: ignore[misc]
            if all(self.books[t].valid for t in tickers if t in self.books):
                return True
            await asyncio.sleep(0.01)
        return False
