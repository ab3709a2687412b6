"""Reading the trading settings and rows by column name (psycopg async connections)."""

from __future__ import annotations

from typing import Any


async def load_settings(conn) -> dict[str, Any]:
    cur = await conn.execute("SELECT key, value FROM trading_settings")
    return {k: v for k, v in await cur.fetchall()}


async def setting(conn, key: str, default: Any = None) -> Any:
    cur = await conn.execute("SELECT value FROM trading_settings WHERE key = %s", (key,))
    row = await cur.fetchone()
    return default if row is None else row[0]


def strategy_conf(settings: dict[str, Any], strategy: str) -> dict[str, Any]:
    strategies = settings.get("strategies") or {}
    conf = strategies.get(strategy) or strategies.get("manual") or {}
    return {"contracts_limit": conf.get("contracts_limit", 100),
            "cancel_order_on_pause": bool(conf.get("cancel_order_on_pause", True))}


def row_dict(cur, row) -> dict[str, Any]:
    """A row of ``cur``'s current result by column name. The names come from the result itself
    (``cur.description`` builds a Column object per column on every call: ~0.1 ms for a trade)."""
    res = cur.pgresult
    names = [res.fname(i).decode() for i in range(res.nfields)]
    return dict(zip(names, row, strict=True))
