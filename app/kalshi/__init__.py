"""Kalshi Trade API v2 client (spec v3.31.0): signing, REST, WebSocket, typed models.

Nothing here reads rec's Settings: :mod:`app.exchange` is the one adapter from
``app.config.Settings`` to these classes.

- :mod:`app.kalshi.urls` - account mode (sim | demo | prod) and URL overrides to
  URLs; Kalshi's dedicated ``external-api`` hosts by default;
- :mod:`app.kalshi.signing` - RSA-PSS request signing (both sides of the wire);
- :mod:`app.kalshi.rest` - :class:`~app.kalshi.rest.KalshiRest` (httpx, timeouts, safe
  retries, pagination); order writes only on the V2 endpoints under
  ``/portfolio/events/orders``, exactly once by client_order_id;
- :mod:`app.kalshi.direction` - the one translation between rec's outcome side +
  action and Kalshi's single YES book (bid/ask);
- :mod:`app.kalshi.prices` - valid prices per market (``price_level_structure`` /
  ``price_ranges``), checked before an order is sent;
- :mod:`app.kalshi.ratelimit` - client-side token buckets from ``/account/limits`` and
  ``/account/endpoint_costs``;
- :mod:`app.kalshi.ws` - :class:`~app.kalshi.ws.KalshiWS` (reconnect, resubscribe,
  seq-gap resync, heartbeat) and :mod:`app.kalshi.book` (local order books);
- :mod:`app.kalshi.models` - results with Decimal dollars/counts and int cents;
- :mod:`app.kalshi.errors` - exceptions carrying Kalshi's error body.
"""
