""":class:`app.kalshi.rest.KalshiRest` by area, over one base (as NautilusTrader's adapters
split theirs): ``base`` (signed request, retries, errors, pacing, pagination), ``retry`` (when a
call may be repeated), ``presign`` (headers signed ahead), ``market``, ``portfolio``,
``orders``, ``order_groups``, ``account``."""
