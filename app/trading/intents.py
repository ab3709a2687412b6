"""One schema per trade intent (open and close): its fields, the idempotency-key and ticker
patterns, the entry and close methods, and :class:`BadInput` naming the field at fault.

rec-trade-manager validates every ``POST /trades`` body here; rec-web can validate its form with
the same functions before it forwards anything:

* :func:`validate_open` ``(raw, limits=None) -> dict``: the open intent with Decimal ``count``
  and ``limit_price``, or :class:`BadInput` naming the first field at fault. ``limits`` are the
  current trading settings (any mapping with ``max_contracts_per_trade``): with them, a count
  over the user's own limit is a field error too; without them the count is bounded by the
  highest limit a user may set (``settings_ranges``).
* :func:`validate_close` ``(raw) -> dict``: the close intent.
* :func:`field_errors` ``(raw, limits=None, intent="open") -> {field: message}``: every field at
  fault at once (for a form).

Prices are Decimal dollars of the trade's side, strictly between $0 and $1.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from app.trading.settings_ranges import RANGES

KEY_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
TICKER_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
SIDES = ("yes", "no")
ENTRY_METHODS = ("manual", "auto")
CLOSE_METHODS = ("manual", "auto", "kill_switch")
INTENTS = ("open", "close")
OPEN_FIELDS = ("intent", "idempotency_key", "market", "side", "count", "limit_price",
               "strategy", "entry_method")
CLOSE_FIELDS = ("intent", "idempotency_key", "trade_id", "limit_price", "close_method",
                "close_rule", "close_detail")
MAX_COUNT = RANGES["max_contracts_per_trade"].high  # the most a user may allow per trade
PRICE_HINT = "must be a price in dollars, e.g. \"0.55\""


class BadInput(Exception):
    """A field of a request is missing or wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def text(body: Mapping[str, Any], name: str, pattern: re.Pattern | None = None,
         required: bool = True, choices: tuple[str, ...] | None = None,
         default: str | None = None) -> str | None:
    v = body.get(name)
    if v is None:
        if required:
            raise BadInput(name, "is required")
        return default
    if not isinstance(v, str) or not v:
        raise BadInput(name, "must be a non-empty string")
    if choices is not None and v not in choices:
        raise BadInput(name, f"must be one of {', '.join(choices)}")
    if pattern is not None and not pattern.match(v):
        raise BadInput(name, f"has an invalid format ({pattern.pattern})")
    return v


def _decimal(v: Any, name: str, hint: str) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, int | str | Decimal | float):
        raise BadInput(name, hint)
    try:
        d = Decimal(str(v).strip())
    except InvalidOperation:
        raise BadInput(name, hint) from None
    if not d.is_finite():
        raise BadInput(name, hint)
    return d


def contracts(body: Mapping[str, Any], limits: Mapping[str, Any] | None = None,
              name: str = "count") -> Decimal:
    """A positive whole number of contracts, at most the user's ``max_contracts_per_trade``
    (with ``limits``) or the highest value that setting may take."""
    v = body.get(name)
    if v is None:
        raise BadInput(name, "is required")
    hint = "must be a positive whole number of contracts"
    d = _decimal(v, name, hint)
    if d <= 0 or d != d.to_integral_value():
        raise BadInput(name, hint)
    if limits is not None and "max_contracts_per_trade" in limits:
        high, what = Decimal(str(limits["max_contracts_per_trade"])), "max_contracts_per_trade"
    else:
        high, what = MAX_COUNT, "the most contracts a trade may have"
    if d > high:
        raise BadInput(name, f"{d} is over {what} ({high})")
    return d


def price(body: Mapping[str, Any], name: str = "limit_price",
          required: bool = True) -> Decimal | None:
    """A limit in dollars of the trade's side: above $0 and below $1."""
    v = body.get(name)
    if v is None:
        if required:
            raise BadInput(name, "is required")
        return None
    d = _decimal(v, name, PRICE_HINT)
    if not (0 < d < 1):
        raise BadInput(name, f"{v} is out of range: a price is above $0 and below $1")
    return d


def amount(body: Mapping[str, Any], name: str) -> Decimal:
    """A non-negative number (a count or milliseconds), e.g. in rec-trade-executor's report."""
    v = body.get(name)
    if v is None:
        raise BadInput(name, "is required")
    d = _decimal(v, name, "must be a non-negative number")
    if d < 0:
        raise BadInput(name, "must be a non-negative number")
    return d


def _only(body: Mapping[str, Any], fields: tuple[str, ...]) -> None:
    unknown = set(body) - set(fields)
    if unknown:
        raise BadInput(sorted(unknown)[0], "is not a field of a trade intent")


def _trade_id(body: Mapping[str, Any]) -> int:
    trade_id = body.get("trade_id")
    if trade_id is None:
        raise BadInput("trade_id", "is required")
    if isinstance(trade_id, bool) or not isinstance(trade_id, int) or trade_id <= 0:
        raise BadInput("trade_id", "must be a positive integer")
    return trade_id


def rule_detail(body: Mapping[str, Any]) -> dict[str, str] | None:
    """The numbers of the exit rule that fired (``{"probability": "0.20", "threshold":
    "0.40"}``): at most 8 names, each value a number or text of at most 64 characters."""
    v = body.get("close_detail")
    if v is None:
        return None
    if not isinstance(v, dict) or len(v) > 8:
        raise BadInput("close_detail", "must be an object of at most 8 names")
    for k, x in v.items():
        if not KEY_RE.match(str(k)) or isinstance(x, bool) or not isinstance(
                x, str | int | float) or len(str(x)) > 64:
            raise BadInput("close_detail", "names and values: short names, numbers or text")
    return {str(k): str(x) for k, x in v.items()}


_OPEN: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any] | None], Any]] = {
    "idempotency_key": lambda b, _: text(b, "idempotency_key", KEY_RE),
    "market": lambda b, _: text(b, "market", TICKER_RE),
    "side": lambda b, _: text(b, "side", choices=SIDES),
    "count": lambda b, lim: contracts(b, lim),
    "limit_price": lambda b, _: price(b),
    "strategy": lambda b, _: text(b, "strategy", KEY_RE, required=False, default="manual"),
    "entry_method": lambda b, _: text(b, "entry_method", choices=ENTRY_METHODS,
                                      required=False, default="manual"),
}
_CLOSE: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any] | None], Any]] = {
    "idempotency_key": lambda b, _: text(b, "idempotency_key", KEY_RE),
    "trade_id": lambda b, _: _trade_id(b),
    "limit_price": lambda b, _: price(b, required=False),
    "close_method": lambda b, _: text(b, "close_method", choices=CLOSE_METHODS,
                                      required=False, default="manual"),
    "close_rule": lambda b, _: text(b, "close_rule", required=False),
    "close_detail": lambda b, _: rule_detail(b),
}


def _schema(intent: str) -> tuple[dict[str, Callable], tuple[str, ...]]:
    return (_OPEN, OPEN_FIELDS) if intent == "open" else (_CLOSE, CLOSE_FIELDS)


def validate_open(raw: Mapping[str, Any], limits: Mapping[str, Any] | None = None
                  ) -> dict[str, Any]:
    """The open intent of ``raw`` (``intent`` may be absent), or BadInput naming a field."""
    _only(raw, OPEN_FIELDS)
    return {name: check(raw, limits) for name, check in _OPEN.items()}


def validate_close(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The close intent of ``raw`` (``intent`` may be absent), or BadInput naming a field."""
    _only(raw, CLOSE_FIELDS)
    return {name: check(raw, None) for name, check in _CLOSE.items()}


def validate_intent(raw: Mapping[str, Any], limits: Mapping[str, Any] | None = None
                    ) -> tuple[str, dict[str, Any]]:
    """(``"open"`` | ``"close"``, the validated intent) of a ``POST /trades`` body."""
    intent = text(raw, "intent", choices=INTENTS)
    _only(raw, tuple(set(OPEN_FIELDS) | set(CLOSE_FIELDS)))
    return intent, (validate_open(raw, limits) if intent == "open" else validate_close(raw))


def field_errors(raw: Mapping[str, Any], limits: Mapping[str, Any] | None = None,
                 intent: str = "open") -> dict[str, str]:
    """Every field of ``raw`` at fault, as ``{field: "field: message"}`` (empty: valid)."""
    checks, fields = _schema(intent)
    errors = {}
    for name in sorted(set(raw) - set(fields)):
        errors[name] = f"{name}: is not a field of a trade intent"
    for name, check in checks.items():
        try:
            check(raw, limits)
        except BadInput as exc:
            errors[name] = str(exc)
    return errors
