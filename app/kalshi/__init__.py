"""Kalshi Trade API v2 client: signing, REST, WebSocket, typed models.

- :mod:`app.kalshi.urls` - the one place that maps REC_ACCOUNT_MODE (sim | demo | prod)
  and the REC_KALSHI_BASE_URL / REC_KALSHI_WS_URL overrides to URLs;
- :mod:`app.kalshi.signing` - RSA-PSS request signing (both sides of the wire);
- :mod:`app.kalshi.rest` - :class:`~app.kalshi.rest.KalshiRest` (httpx, timeouts, safe
  retries, pagination);
- :mod:`app.kalshi.ws` - :class:`~app.kalshi.ws.KalshiWS` (reconnect, resubscribe,
  seq-gap resync, heartbeat) and :mod:`app.kalshi.book` (local order books);
- :mod:`app.kalshi.models` - results with Decimal dollars/counts and int cents;
- :mod:`app.kalshi.errors` - exceptions carrying Kalshi's error body.
"""
