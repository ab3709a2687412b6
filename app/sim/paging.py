"""Keyset pagination shared by the listings: the cursor is the last key a page sent,
base64url-encoded; an int key (a sequence number) or a "t:"-prefixed text key."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from typing import Any

from app.sim.context import Ctx
from app.sim.wire import WireError


def _cursor_in(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        return base64.urlsafe_b64decode(cursor.encode() + b"==").decode()
    except (ValueError, UnicodeDecodeError):
        raise WireError("invalid_parameters", "invalid cursor") from None


def _after(cursor: str | None) -> int | str | None:
    """The last key a cursor names: an int, a "t:"-prefixed text key, or None."""
    after = _cursor_in(cursor)
    if after is None or after.startswith("t:"):
        return after
    if after.lstrip("-").isascii() and after.lstrip("-").isdigit() and len(after) < 20:
        return int(after)
    raise WireError("invalid_parameters", "invalid cursor")


def _past(k: Any, after: int | str, descending: bool) -> bool:
    """Whether key `k` comes after the cursor's key in the listing's order."""
    if isinstance(k, int) != isinstance(after, int):
        raise WireError("invalid_parameters", "invalid cursor")
    if isinstance(after, int):
        return k < after if descending else k > after
    ks = "t:" + str(k)
    return ks < after if descending else ks > after


def page(items: Iterable[Any], key: Callable[[Any], Any], cursor: str | None, limit: int,
         descending: bool = False) -> tuple[list[Any], str]:
    """Keyset pagination over items sorted by `key`; the cursor is the last key sent."""
    after = _after(cursor)
    out = []
    more = False
    for it in items:
        if after is not None and not _past(key(it), after, descending):
            continue
        if len(out) == limit:
            more = True
            break
        out.append(it)
    nxt = ""
    if more and out:
        last = key(out[-1])
        raw = str(last) if isinstance(last, int) else "t:" + str(last)
        nxt = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    return out, nxt


def in_window(ts_ms: int, ctx: Ctx) -> bool:
    lo = ctx.q_int("min_ts", None)
    hi = ctx.q_int("max_ts", None)
    return (lo is None or ts_ms >= lo * 1000) and (hi is None or ts_ms <= hi * 1000)



def check_cursor_scope(cursor: str | None, scope: str) -> None:
    """A cursor whose text key does not start with `scope` belongs to another listing
    (e.g. positions of another settlement_status): refused rather than misread."""
    after = _cursor_in(cursor)
    if after is not None and not after.startswith("t:" + scope):
        raise WireError("invalid_parameters", "the cursor belongs to another listing")
