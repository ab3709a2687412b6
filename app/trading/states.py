"""Trade states and their transitions, the leg's derived client_order_id, the NOTIFY channels.

    pending -> submitted -> open -> closing -> closed
    pending -> rejected | canceled | expired;  submitted -> canceled (nothing filled)
    closing -> open (a close that failed or was rejected: the exit rule may try again)
    open -> expired (the market closed or settled; the settlement is booked when known). A
    trade with a leg in flight (pending, submitted, closing) never expires from the market: the
    leg may have filled as the market ended, so its fate and fills are booked first.
"""

from __future__ import annotations

PENDING, SUBMITTED, OPEN, CLOSING, CLOSED = "pending", "submitted", "open", "closing", "closed"
REJECTED, CANCELED, EXPIRED = "rejected", "canceled", "expired"
ACTIVE_STATES = (PENDING, SUBMITTED, OPEN, CLOSING)  # a trade that still holds or may hold
FINAL_STATES = (CLOSED, REJECTED, CANCELED, EXPIRED)
TRANSITIONS = {
    PENDING: {SUBMITTED, REJECTED, CANCELED, EXPIRED},
    SUBMITTED: {OPEN, REJECTED, CANCELED, EXPIRED},
    OPEN: {CLOSING, EXPIRED},
    CLOSING: {OPEN, CLOSED},
    EXPIRED: set(),
    CLOSED: set(),
    REJECTED: set(),
    CANCELED: set(),
}
# a leg's final states (a resting 'accepted' leg ends when the exchange says it ended)
LEG_FINAL = ("rejected", "expired", "canceled")
TIFS = ("fill_or_kill", "immediate_or_cancel", "good_till_canceled")

# NOTIFY channels
CH_ORDERS = "trade_orders"  # manager -> executor: a leg to send (payload: client_order_id)
CH_RESULTS = "trade_order_results"  # executor -> manager: a leg's outcome (client_order_id)
CH_TRADES = "trades"  # manager -> everyone: a trade changed (payload: trade id)
# a leg the exchange acknowledged, as written by rec-trade-executor or, for an open leg it
# reports, by rec-trade-manager: the same columns either way (parameters: exchange order id,
# fill count, remaining count, milliseconds from send to acknowledgement)
LEG_ACCEPTED = ("state = 'accepted', exchange_order_id = %s, fill_count = %s, "
                "remaining_count = %s, acked_at = now(), ack_ms = %s, attempts = attempts + 1")


def client_order_id(install_id: str, trade_id: int, leg: str) -> str:
    """The one client_order_id of a trade's leg: the same on every retry, restart or
    resend, so the exchange can never accept a second order for it."""
    return f"rec-{install_id}-{trade_id}-{leg}"
