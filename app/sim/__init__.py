"""rec-exchange-sim: a local exchange speaking Kalshi's Trade API v2 wire protocol.

One ASGI app (app.py) on one port: REST under /trade-api/v2 (rest.py), WebSocket at
/trade-api/ws/v2 (ws.py), GET /healthz, and the loopback-only /_sim control API for fault
injection and test helpers (faults.py; off unless REC_SIM_FAULTS_ENABLED).

- world.py      seeded BTC price process, hourly KXBTCD (above) / KXBTC (range) events,
                open/close/settle schedule, speed factor (0 = manual clock)
- replay.py     or a recording played instead (sim_replay_file, docs/replay.md): replay_file.py
                reads it, replay_fills.py the queue-position fill model
- liquidity.py  market maker around fair value + noise takers
- venue.py      the exchange core: markets, accounts, order operations, settlement,
                observer callbacks; money.py the $0.0001 money unit and price grids
- matching.py   yes/no bid books, price-time priority
- accounts.py   cash, collateral, netted positions, fills, settlements (integer cents)
- fees.py       Kalshi's fee model and fee rounding (per-order accumulator, rebates)
- views.py      wire objects; wire.py fixed-point formats and strict request parsing
- rest.py       market data reads, the route table and the endpoint wrapper; portfolio.py
                portfolio and historical reads; paging.py cursors; orders.py the V2 order
                endpoints; context.py request context and error bodies; control.py /_sim
- auth.py       RSA-PSS and Ed25519 verification against <keys_dir>/<key_id>.pem
- ratelimit.py  token buckets per key by Kalshi tier
- sim.py        one simulator instance; config.py SimConfig and sim_config(settings)
- cli.py        `rec sim add-key|gen-key` (`rec run exchange-sim` is app/services/exchange_sim.py)
"""
