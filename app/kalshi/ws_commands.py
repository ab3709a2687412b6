"""KalshiWS's commands: subscriptions kept across reconnects, replies matched by id."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from websockets.exceptions import ConnectionClosed

from app.kalshi.ws_types import (
    CONTROL_TYPES,
    ORDERBOOK,
    Subscription,
    WsCommandError,
    WsNotConnected,
)


class WsCommands:
    """The command side of :class:`app.kalshi.ws.KalshiWS` (its state lives there)."""

    # ------------------------------------------------------------------ commands

    async def subscribe(
        self,
        channel: str,
        *,
        market_tickers: list[str] | None = None,
        market_ticker: str | None = None,
        **params: Any,
    ) -> Subscription:
        """Subscribe to one channel; kept and re-sent after every reconnect."""
        p = dict(params)
        if market_tickers:
            p["market_tickers"] = list(market_tickers)
        if market_ticker:
            p["market_ticker"] = market_ticker
        sub = Subscription(channel=channel, params=p)
        if channel == ORDERBOOK:
            for t in sub.market_tickers:
                self._book(t)
        self.subscriptions.append(sub)
        if self._conn is not None and self.connected.is_set():
            try:
                await self._send_subscribe(sub)
            except WsCommandError:
                self.subscriptions.remove(sub)
                raise
            except (WsNotConnected, TimeoutError):
                pass  # sent again once the connection is back
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        sub.active = False
        if sub in self.subscriptions:
            self.subscriptions.remove(sub)
        if sub.sid is not None:
            self._by_sid.pop(sub.sid, None)
            with contextlib.suppress(WsNotConnected, WsCommandError, TimeoutError):
                await self.command("unsubscribe", {"sids": [sub.sid]})
        if sub.channel == ORDERBOOK:
            still = {
                t for s in self.subscriptions if s.channel == ORDERBOOK for t in s.market_tickers
            }
            for t in sub.market_tickers:
                if t not in still:
                    self.books.pop(t, None)

    async def add_markets(self, sub: Subscription, tickers: list[str]) -> dict[str, Any]:
        return await self._update_markets(sub, "add_markets", tickers)

    async def delete_markets(self, sub: Subscription, tickers: list[str]) -> dict[str, Any]:
        return await self._update_markets(sub, "delete_markets", tickers)

    async def _update_markets(
        self, sub: Subscription, action: str, tickers: list[str]
    ) -> dict[str, Any]:
        current = sub.market_tickers
        if action == "add_markets":
            new = current + [t for t in tickers if t not in current]
        else:
            new = [t for t in current if t not in tickers]
        sub.params.pop("market_ticker", None)
        sub.params["market_tickers"] = new
        if sub.channel == ORDERBOOK:
            for t in tickers:
                if action == "add_markets":
                    self._book(t)
                else:
                    self.books.pop(t, None)
        if sub.sid is None:
            return {}
        return await self.command(
            "update_subscription",
            {"sids": [sub.sid], "action": action, "market_tickers": list(tickers)},
            sub=sub,
        )

    async def list_subscriptions(self) -> list[dict[str, Any]]:
        reply = await self.command("list_subscriptions", None)
        msg = reply.get("msg")
        return msg if isinstance(msg, list) else []

    async def command(
        self,
        cmd: str,
        params: dict[str, Any] | None,
        *,
        sub: Subscription | None = None,
        reply_within: float | None = None,
    ) -> dict[str, Any]:
        """Send a command and wait for the reply with the same id."""
        fut = await self._send_command(cmd, params, sub)
        async with asyncio.timeout(reply_within or self.command_timeout):
            return await fut

    async def _send_command(
        self, cmd: str, params: dict[str, Any] | None, sub: Subscription | None
    ) -> asyncio.Future[dict[str, Any]]:
        conn = self._conn
        if conn is None:
            raise WsNotConnected(f"{cmd}: not connected")
        cid = next(self._ids)
        payload: dict[str, Any] = {"id": cid, "cmd": cmd}
        if params is not None:
            payload["params"] = params
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cid] = (fut, sub)
        try:
            await conn.send(_dumps(payload))
        except ConnectionClosed:
            self._pending.pop(cid, None)
            raise WsNotConnected(f"{cmd}: connection closed") from None
        return fut

    async def _send_subscribe(self, sub: Subscription) -> None:
        params = {"channels": [sub.channel], **sub.params}
        sub.sid = None
        sub.last_seq = None
        if sub.channel == ORDERBOOK:
            for t in sub.market_tickers:
                self._book(t).invalidate()
        await self.command("subscribe", params, sub=sub)

    def _answer_command(self, mtype: str, data: dict[str, Any]) -> bool:
        """Complete the command this frame answers, if any; True when it answered one."""
        cid = data.get("id")
        if cid is None or cid not in self._pending:
            return False
        if mtype in CONTROL_TYPES:
            self._resolve(cid, data)
        elif mtype == "orderbook_snapshot" or mtype.endswith("_indexlist"):
            # the answer to get_snapshot, or to a cfbenchmarks indexlist action
            fut, _ = self._pending.pop(cid)
            if not fut.done():
                fut.set_result(data)
        return True

    def _resolve(self, cid: int, data: dict[str, Any]) -> None:
        fut, sub = self._pending.pop(cid)
        if data.get("type") == "subscribed" and sub is not None:
            msg = data.get("msg") or {}
            sid = msg.get("sid", data.get("sid"))
            if sid is not None and sub.active:
                sub.sid = sid
                sub.last_seq = None
                self._by_sid[sid] = sub
        if fut.done():
            return
        if data.get("type") == "error":
            msg = data.get("msg") or {}
            fut.set_exception(
                WsCommandError(
                    f"ws command {cid}: error {msg.get('code')}: {msg.get('msg')}",
                    ws_code=msg.get("code"),
                    raw=data,
                )
            )
        else:
            fut.set_result(data)


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))
