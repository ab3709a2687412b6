"""Order direction: rec's outcome-side view <-> Kalshi's single YES book (V2).

rec reasons in outcome side (``yes`` / ``no``) and action (``buy`` / ``sell``),
with a price in that side's own terms. Kalshi's V2 order endpoints quote every
order on the YES book: ``side`` is ``bid`` (buy YES) or ``ask`` (sell YES) and
``price`` is a YES price. This module is the only place that translates:

============  ===============  ====================
rec           YES book          exposure
============  ===============  ====================
buy YES @ p   ``bid`` @ p       ``outcome_side=yes``
sell NO @ q   ``bid`` @ 1 - q   ``outcome_side=yes``
sell YES @ p  ``ask`` @ p       ``outcome_side=no``
buy NO @ q    ``ask`` @ 1 - q   ``outcome_side=no``
============  ===============  ====================

A book quote alone cannot say whether a ``bid`` was meant as "buy YES" or
"sell NO" (economically they are the same order); :func:`from_book` therefore
takes the outcome side to express the quote in. Prices are exact Decimals and
must lie strictly between $0 and $1.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from app.kalshi.models import to_decimal

OutcomeSide = Literal["yes", "no"]
Action = Literal["buy", "sell"]
BookSide = Literal["bid", "ask"]

OUTCOME_SIDES: tuple[OutcomeSide, ...] = ("yes", "no")
ACTIONS: tuple[Action, ...] = ("buy", "sell")
BOOK_SIDES: tuple[BookSide, ...] = ("bid", "ask")
ONE = Decimal(1)


@dataclass(frozen=True)
class BookQuote:
    """An order as the V2 endpoints take it: YES-book side and YES price (dollars)."""

    book_side: BookSide
    price: Decimal

    @property
    def outcome_side(self) -> OutcomeSide:
        """The exposure the order builds (``bid`` -> yes, ``ask`` -> no)."""
        return outcome_side_of(self.book_side)


@dataclass(frozen=True)
class Intent:
    """An order as rec thinks of it: outcome side, action, price in that side's terms."""

    side: OutcomeSide
    action: Action
    price: Decimal


def _price(value: Decimal | str | int) -> Decimal:
    p = to_decimal(value)
    if not 0 < p < 1:
        raise ValueError(f"a price must be strictly between $0 and $1, not {value!r}")
    return p


def _check_side(side: str) -> None:
    if side not in OUTCOME_SIDES:
        raise ValueError(f"side must be 'yes' or 'no', not {side!r}")


def to_book(side: str, action: str, price: Decimal | str | int) -> BookQuote:
    """Translate buy/sell YES/NO at ``price`` (that side's dollars) to the YES book."""
    _check_side(side)
    if action not in ACTIONS:
        raise ValueError(f"action must be 'buy' or 'sell', not {action!r}")
    p = _price(price)
    buys_yes_exposure = (side == "yes") == (action == "buy")
    book_side: BookSide = "bid" if buys_yes_exposure else "ask"
    return BookQuote(book_side, p if side == "yes" else ONE - p)


def from_book(book_side: str, yes_price: Decimal | str | int, side: str) -> Intent:
    """Express a YES-book quote as an action on outcome ``side``.

    ``from_book("bid", p, "yes")`` is buy YES at p; ``from_book("bid", p, "no")``
    is sell NO at 1 - p. ``to_book(*from_book(b, p, s))`` gives back ``(b, p)``.
    """
    if book_side not in BOOK_SIDES:
        raise ValueError(f"book side must be 'bid' or 'ask', not {book_side!r}")
    _check_side(side)
    p = _price(yes_price)
    if side == "yes":
        return Intent("yes", "buy" if book_side == "bid" else "sell", p)
    return Intent("no", "sell" if book_side == "bid" else "buy", ONE - p)


def outcome_side_of(book_side: str) -> OutcomeSide:
    if book_side not in BOOK_SIDES:
        raise ValueError(f"book side must be 'bid' or 'ask', not {book_side!r}")
    return "yes" if book_side == "bid" else "no"


def book_side_of(outcome_side: str) -> BookSide:
    _check_side(outcome_side)
    return "bid" if outcome_side == "yes" else "ask"


def side_price(yes_price: Decimal | str | int, side: str) -> Decimal:
    """A YES price seen from ``side`` (NO pays 1 - p)."""
    _check_side(side)
    p = to_decimal(yes_price)
    return p if side == "yes" else ONE - p
