"""The replay's queue-position model: when a recorded print fills rec's resting orders.

rec's orders do not move the recorded future: the prints happen as recorded, whatever rec
rests. A resting order joins the back of its price level: ``ahead`` is what the book
displayed at that price when it was placed (the recording's size and rec's own orders
already there). A recorded print that hits the order's side

- at the order's price consumes ``ahead`` first and fills the order with what is left of
  the print (only prints reduce ``ahead``: a recorded cancel ahead of the order is not
  known to be ahead of it, so the model stays on the side of fewer fills);
- at a worse price than the order's (a taker that went through it) fills the order first,
  up to the print's size: the taker would have met it on the way.

Orders at better prices fill first, then by time; the fills of one print never exceed it.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.sim.matching import YES, Order, other
from app.sim.money import ONE


@dataclass(eq=False)
class Place:
    order: Order
    price: int  # the order's bid price on its outcome when its place was taken
    ahead: int  # contracts in front of it at that price


class QueueModel:
    def __init__(self) -> None:
        self.places: dict[str, list[Place]] = {}  # ticker -> rec's resting orders

    def track(self, order: Order, displayed_ahead: int) -> None:
        """A resting order (new, or moved to a new price: the back of the new level)."""
        places = self.places.setdefault(order.ticker, [])
        for p in places:
            if p.order is order:
                if p.price != order.price:
                    p.price, p.ahead = order.price, displayed_ahead
                return
        places.append(Place(order, order.price, displayed_ahead))

    def ahead(self, order: Order) -> int | None:
        for p in self.places.get(order.ticker, ()):
            if p.order is order:
                return p.ahead
        return None

    def on_print(self, ticker: str, yes_price: int, size: int,
                 taker_side: str) -> list[tuple[Order, int]]:
        """The fills of rec's orders one recorded print makes: (order, count), in order."""
        places = self.places.get(ticker)
        if not places:
            return []
        places[:] = [p for p in places if p.order.status == "resting" and p.order.remaining]
        hit = other(taker_side)  # the bids the taker sold into
        price = yes_price if hit == YES else ONE - yes_price  # the print on the hit bids
        mine = sorted((p for p in places if p.order.outcome == hit and p.price >= price),
                      key=lambda p: (-p.price, p.order.seq))
        fills: list[tuple[Order, int]] = []
        left = size
        for p in mine:
            if p.price > price:  # passed through: filled before the recorded maker
                n = min(p.order.remaining, left)
                left -= n
            else:  # at the print's price: behind what was displayed when it was placed
                n = min(p.order.remaining, max(0, left - p.ahead),
                        size - sum(f for _, f in fills))
                p.ahead = max(0, p.ahead - left)
            if n > 0:
                fills.append((p.order, n))
        return fills
