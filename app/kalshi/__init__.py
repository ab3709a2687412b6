"""Kalshi Trade API v2 client (spec v3.31.0, and the later changes rec meets): signing, REST,
WebSocket, typed models.

Nothing here reads rec's Settings: :mod:`app.exchange_client` is the one adapter from
``app.config.Settings`` to these classes.

- :mod:`app.kalshi.urls` - account mode (sim | demo | prod) and URL overrides to
  URLs; Kalshi's dedicated ``external-api`` hosts by default;
- :mod:`app.kalshi.signing` - request signing with an RSA-PSS or Ed25519 key, the type read
  from the PEM (both sides of the wire);
- :mod:`app.kalshi.rest` - :class:`~app.kalshi.rest.KalshiRest` (timeouts, safe retries,
  pagination), composed by area from :mod:`app.kalshi.http` (base, market, portfolio,
  orders, order groups, account); order writes only on the V2 endpoints under
  ``/portfolio/events/orders``, exactly once by client_order_id;
- :mod:`app.kalshi.http1` - the HTTP/1.1 keep-alive pool KalshiRest sends on (measured
  against aiohttp's by ``benchmarks/http_pool_compare.py``; httpx for injected transports);
- :mod:`app.kalshi.direction` - the one translation between rec's outcome side +
  action and Kalshi's single YES book (bid/ask);
- :mod:`app.kalshi.prices` - valid prices per market (``price_level_structure`` /
  ``price_ranges``), checked before an order is sent;
- :mod:`app.kalshi.ratelimit` - client-side token buckets from ``/account/limits`` and
  ``/account/endpoint_costs``;
- :mod:`app.kalshi.ws` - :class:`~app.kalshi.ws.KalshiWS` (reconnect, resubscribe,
  seq-gap resync, heartbeat; commands in ``ws_commands``, books in ``ws_books``, types in
  ``ws_types``) and :mod:`app.kalshi.book` (local order books);
- :mod:`app.kalshi.models` - results with Decimal dollars/counts and int cents
  (:mod:`app.kalshi.money` - the fixed-point conversions);
- :mod:`app.kalshi.errors` - exceptions carrying Kalshi's error body.
"""
