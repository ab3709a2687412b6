"""rec-trade-manager's SQL: the statements that write or read trades, in one place.

``LEG_ACCEPTED`` (app/trading/states.py) is the column list both writers of an acknowledged leg
use (the executor and the manager)."""

from app.db.retention import Retention
from app.trading.states import FINAL_STATES, LEG_ACCEPTED

ACTIVE_SQL = "('pending', 'submitted', 'open', 'closing')"
# An open intent in one statement (one round trip). ``c``: the idempotency key, the trading
# settings, the market's trading fields, the risk figures and a leg on the market whose order write
# is in doubt (``c_in_doubt``: while there is one, no open on that market is written). The trade,
# its open leg (client_order_id = rec-<install>-<trade>-open), its first event, the intent and the
# executor's NOTIFY are written only if the key is new, nothing is in doubt there, the settings and
# the market are exactly the ones the manager checked the request against (its last copies, as
# jsonb text) and the risk figures are within the bounds it computed from them (``_risk_bounds``).
# Otherwise nothing is written and ``c`` is returned: the manager checks again with it (a refusal
# names the rule) and retries.
OPEN_SQL = f"""
WITH c AS (
    SELECT (SELECT intent FROM trade_intents WHERE idempotency_key = %(key)s) AS c_known,
           (SELECT jsonb_object_agg(key, value) FROM trading_settings)::text AS c_settings,
           (SELECT jsonb_build_object(
                'ticker', m.ticker, 'status', m.status, 'event_ticker', m.event_ticker,
                'price_level_structure', m.price_level_structure,
                'raw', jsonb_build_object('price_level_structure', m.raw->'price_level_structure',
                                          'price_ranges', m.raw->'price_ranges'))
            FROM markets m WHERE m.ticker = %(ticker)s)::text AS c_market,
           (SELECT coalesce(sum(quantity), 0) FROM trades WHERE ticker = %(ticker)s
            AND status IN {ACTIVE_SQL}) AS c_held,
           (SELECT coalesce(sum(CASE WHEN entry_cost IS NOT NULL THEN entry_cost + fees
                                     ELSE quantity * limit_price END), 0)
            FROM trades WHERE status IN {ACTIVE_SQL}) AS c_exposure,
           (SELECT coalesce(sum(pnl_cents), 0) FROM trades
            WHERE closed_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
               AS c_pnl,
           (SELECT min(client_order_id) FROM trade_orders WHERE ticker = %(ticker)s
            AND state = 'new' AND in_doubt_since IS NOT NULL) AS c_in_doubt),
ok AS (
    SELECT 1 FROM c WHERE c_known IS NULL AND c_in_doubt IS NULL AND c_settings = %(settings)s
       AND c_market = %(market)s AND c_held <= %(max_held)s
       AND c_exposure <= %(max_exposure)s AND c_pnl > %(min_pnl)s),
t AS (
    INSERT INTO trades (ticker, side, status, quantity, requested_count, limit_price, strategy,
                        entry_method, open_key, event_ticker)
    SELECT %(ticker)s, %(side)s, 'pending', %(count)s, %(count)s, %(price)s, %(strategy)s,
           %(entry_method)s, %(key)s, %(event_ticker)s FROM ok
    RETURNING *),
o AS (
    INSERT INTO trade_orders (client_order_id, trade_id, leg, ticker, side, action, count, price,
                              time_in_force, strategy, cancel_on_pause)
    SELECT %(prefix)s || t.id || '-open', t.id, 'open', t.ticker, t.side, 'buy', t.quantity,
           t.limit_price, %(tif)s, t.strategy, %(on_pause)s FROM t
    RETURNING client_order_id),
e AS (
    INSERT INTO trade_events (trade_id, kind, to_status, detail)
    SELECT t.id, 'created', 'pending',
           %(created)s::jsonb || jsonb_build_object('client_order_id', o.client_order_id)
    FROM t, o),
i AS (
    INSERT INTO trade_intents (idempotency_key, intent, trade_id, request)
    SELECT %(key)s, 'open', t.id, %(request)s::jsonb FROM t)
SELECT c.*, t.*, (SELECT pg_notify(%(channel)s, json_build_object(
    'coid', o.client_order_id, 'ticker', t.ticker, 'side', t.side, 'action', 'buy',
    'count', t.quantity::text, 'price', t.limit_price::text, 'tif', %(tif)s,
    'strategy', t.strategy, 'on_pause', %(on_pause)s)::text) FROM t, o) AS c_notified
FROM c LEFT JOIN t ON true
"""
# acknowledged open legs ``o``: their trades pending -> submitted, each with its event; the
# trades returned (the common result, on the intent -> acknowledgement path). ``{locked}``:
# where several trades move, ``l`` holds them locked in id order, the order every transaction
# here that moves several trades locks them in (so none waits on another in a cycle)
_SUBMITTED = """
u AS (
    UPDATE trades t SET status = 'submitted', updated_at = now() FROM o{locked}
    WHERE t.id = o.trade_id AND t.status = 'pending' RETURNING t.*),
e AS (
    INSERT INTO trade_events (trade_id, kind, from_status, to_status, detail)
    SELECT u.id, 'order accepted', 'pending', 'submitted', jsonb_build_object(
        'client_order_id', o.client_order_id, 'exchange_order_id', o.exchange_order_id,
        'fill_count', o.fill_count::text, 'remaining_count', o.remaining_count::text)
    FROM u JOIN o ON o.trade_id = u.id)
"""
# legs the executor wrote as accepted (and announced by NOTIFY)
ACCEPTED_OPENS = f"""
WITH o AS (
    SELECT trade_id, client_order_id, exchange_order_id, fill_count, remaining_count
    FROM trade_orders WHERE client_order_id = ANY(%s) AND leg = 'open' AND state = 'accepted'),
l AS MATERIALIZED (
    SELECT t.id FROM trades t JOIN o ON o.trade_id = t.id WHERE t.status = 'pending'
    ORDER BY t.id FOR UPDATE OF t),
{_SUBMITTED.format(locked=" JOIN l ON l.id = o.trade_id")}
SELECT * FROM u
"""
# an open leg the executor reports accepted straight to the manager (``POST
# /legs/{coid}/accepted``): the leg's acknowledgement and the trade's move written together;
# ``c_written`` is 0 when the leg was no longer new (already written: nothing done)
REPORTED_OPEN = f"""
WITH o AS (
    UPDATE trade_orders SET {LEG_ACCEPTED}
    WHERE client_order_id = %s AND leg = 'open' AND state = 'new'
    RETURNING trade_id, client_order_id, exchange_order_id, fill_count, remaining_count),
{_SUBMITTED.format(locked="")}
SELECT (SELECT count(*) FROM o) AS c_written, u.* FROM (SELECT 1) AS one LEFT JOIN u ON true
"""
# the legs whose result can move their trade: an acknowledged open, a rejected, expired or
# canceled leg, an order that ended (nothing remaining, or account-sync saw it executed or
# canceled); a resting order is left alone until one of those holds
RESULTS = """
SELECT t.id, t.status, t.side, t.quantity, t.ticker, o.client_order_id, o.leg, o.state,
       o.exchange_order_id, o.fill_count, o.remaining_count, o.error_code, o.error_text
FROM trades t JOIN trade_orders o ON o.trade_id = t.id
 AND o.leg = CASE WHEN t.status IN ('pending', 'submitted') THEN 'open'
                  ELSE 'close' || t.close_attempts END
WHERE t.status IN ('pending', 'submitted', 'closing') AND o.state <> 'new'
  AND (t.status = 'pending' OR o.state IN ('rejected', 'expired', 'canceled')
       OR o.remaining_count = 0
       OR EXISTS (SELECT 1 FROM account_orders a WHERE a.order_id = o.exchange_order_id
                  AND a.status IN ('executed', 'canceled')))
"""


# entries that rest and are given up: with the kill switch's close flag, or resting longer than
# open_order_max_rest_sec; the leg becomes 'cancel' (rec-trade-executor cancels it at the
# exchange, during a trading pause too), with a 'cancel requested' event naming the rule
CANCEL_RESTING = """
WITH s AS (
    SELECT coalesce((SELECT value FROM trading_settings WHERE key = 'kill_switch')::text::boolean
                    AND (SELECT value FROM trading_settings
                         WHERE key = 'kill_switch_close_open')::text::boolean, false) AS kill,
           coalesce((SELECT value FROM trading_settings
                     WHERE key = 'open_order_max_rest_sec')::text::numeric, 0) AS max_rest),
c AS (
    SELECT o.client_order_id, o.trade_id,
           CASE WHEN s.kill THEN 'kill_switch_close_open' ELSE 'open_order_max_rest_sec' END
               AS rule
    FROM trade_orders o JOIN trades t ON t.id = o.trade_id CROSS JOIN s
    WHERE t.status = 'submitted' AND o.leg = 'open' AND o.state = 'accepted'
      AND o.remaining_count > 0
      AND (s.kill OR (s.max_rest > 0
                      AND o.acked_at < now() - make_interval(secs => s.max_rest::float8)))
      AND NOT EXISTS (SELECT 1 FROM account_orders a WHERE a.order_id = o.exchange_order_id
                      AND a.status IN ('executed', 'canceled'))),
u AS (
    UPDATE trade_orders o SET state = 'cancel' FROM c
    WHERE o.client_order_id = c.client_order_id AND o.state = 'accepted'
    RETURNING o.client_order_id),
e AS (
    INSERT INTO trade_events (trade_id, kind, detail)
    SELECT c.trade_id, 'cancel requested',
           jsonb_build_object('client_order_id', c.client_order_id, 'rule', c.rule)
    FROM c JOIN u USING (client_order_id))
SELECT c.trade_id, c.client_order_id, c.rule, pg_notify(%s, c.client_order_id)
FROM c JOIN u USING (client_order_id)
"""


# one resting entry given up by a trader (POST /trades/{id}/cancel): its leg becomes 'cancel'
# as CANCEL_RESTING does it, the event names the rule 'manual' and who asked
CANCEL_ENTRY = """
WITH c AS (
    SELECT o.client_order_id, o.trade_id FROM trade_orders o JOIN trades t ON t.id = o.trade_id
    WHERE t.id = %(trade_id)s AND t.status = 'submitted' AND o.leg = 'open'
      AND o.state = 'accepted' AND o.remaining_count > 0
    FOR UPDATE OF o),
u AS (
    UPDATE trade_orders o SET state = 'cancel' FROM c
    WHERE o.client_order_id = c.client_order_id AND o.state = 'accepted'
    RETURNING o.client_order_id, o.trade_id),
e AS (
    INSERT INTO trade_events (trade_id, kind, detail)
    SELECT trade_id, 'cancel requested',
           jsonb_build_object('client_order_id', client_order_id, 'rule', 'manual',
                              'by', %(by)s::text)
    FROM u)
SELECT trade_id, client_order_id, pg_notify(%(channel)s, client_order_id) FROM u
"""


# a market that is no longer open, or whose settlement the exchange has booked (rec-account-
# sync's account_settlements, whichever of the two witnesses comes first): its open trades
# expire; trades are locked in id order (no deadlock with others). A trade with a leg in
# flight (pending, submitted, closing) is left to its leg: the order may have filled as the
# market ended, so the leg's fate and fills are booked first (the exchange cancels what rests
# at the close), and the trade expires from open after that, its settlement booked from what
# it then holds.
TO_EXPIRE = """
SELECT t.id, t.status, m.status, s.market_result FROM trades t
LEFT JOIN markets m ON m.ticker = t.ticker
LEFT JOIN account_settlements s ON s.ticker = t.ticker
WHERE t.status = 'open'
  AND (m.status IN ('closed', 'determined', 'settled', 'finalized') OR s.ticker IS NOT NULL)
ORDER BY t.id FOR UPDATE OF t
"""
# expired trades that held contracts and whose settlement is known
TO_SETTLE = """
SELECT t.id, t.side, t.quantity, t.entry_cost, t.fees, coalesce(t.exit_proceeds, 0),
       s.market_result FROM trades t JOIN account_settlements s ON s.ticker = t.ticker
WHERE t.status = 'expired' AND t.market_result IS NULL AND t.entry_cost IS NOT NULL
"""
SETTLE = """
UPDATE trades SET market_result = %s, exit_proceeds = %s, pnl_cents = %s, win = %s,
       close_method = coalesce(close_method, 'settlement'),
       exit_price = coalesce(exit_price, %s), closed_at = now(), updated_at = now()
WHERE id = %s
"""
# (contracts, dollars at the trade side's price, fees) of an order from the ledger
FILLS = """
SELECT sum(count), sum(count * CASE WHEN %s = 'yes' THEN yes_price
                                    ELSE coalesce(no_price, 1 - yes_price) END),
       coalesce(sum(fee), 0)
FROM account_fills WHERE order_id = %s
"""
EVENT = "INSERT INTO trade_events (trade_id, kind, detail) VALUES (%s, %s, %s)"
TRANSITION_EVENT = ("INSERT INTO trade_events (trade_id, kind, from_status, to_status, detail) "
                    "VALUES (%s, %s, %s, %s, %s)")
CLOSE_LEG = """
INSERT INTO trade_orders (client_order_id, trade_id, leg, ticker, side, action, count, price,
                          time_in_force, strategy, cancel_on_pause)
VALUES (%s, %s, %s, %s, %s, 'sell', %s, %s, %s, %s, %s)
"""
INTENT = ("INSERT INTO trade_intents (idempotency_key, intent, trade_id, request) "
          "VALUES (%s, %s, %s, %s)")
# the pace of a trade's closes: close legs sent in the last minute, closes that ended without
# a fill (each doubles the wait before the next) and when the last one was written
CLOSE_PACE = """
SELECT count(*) FILTER (WHERE created_at > now() - interval '1 minute'),
       count(*) FILTER (WHERE state <> 'new' AND coalesce(fill_count, 0) = 0
                        AND (state <> 'accepted' OR remaining_count = 0)),
       extract(epoch FROM now() - max(created_at))::float8
FROM trade_orders WHERE trade_id = %s AND leg LIKE 'close%%'
"""
# an exchange order no leg owns, with fills (a fill made at the exchange behind rec's back):
# adopted into an explicit trade of strategy and entry method 'unowned', submitted with its
# leg acknowledged, so the state machine books it from the fills like any other open (its
# contracts, cost and fees, then its close or settlement and P&L); an 'adopted' event names
# the exchange order. The leg keeps the order's client_order_id ('unowned-<order id>' when it
# had none), so it is never sent; nothing is written if that id is already a leg's
ADOPT = """
WITH t AS (
    INSERT INTO trades (ticker, side, status, quantity, requested_count, limit_price, strategy,
                        entry_method, reason)
    SELECT %(ticker)s, %(side)s, 'submitted', %(count)s, %(count)s, %(price)s, 'unowned',
           'unowned', %(reason)s
    WHERE NOT EXISTS (SELECT 1 FROM trade_orders WHERE client_order_id = %(coid)s
                      OR exchange_order_id = %(order_id)s)
    RETURNING id),
o AS (
    INSERT INTO trade_orders (client_order_id, trade_id, leg, ticker, side, action, count, price,
                              time_in_force, strategy, state, exchange_order_id, fill_count,
                              remaining_count, acked_at)
    SELECT %(coid)s, t.id, 'open', %(ticker)s, %(side)s, 'buy', %(count)s, %(price)s,
           'good_till_canceled', 'unowned', 'accepted', %(order_id)s, %(filled)s,
           %(remaining)s, now() FROM t),
e AS (
    INSERT INTO trade_events (trade_id, kind, to_status, detail)
    SELECT t.id, 'adopted', 'submitted', %(detail)s::jsonb FROM t)
SELECT id FROM t
"""


def finished_trade_events(days: float) -> Retention:
    """rec-trade-manager's retention of the events of finished trades (0 days: kept)."""
    finished = ", ".join(f"'{s}'" for s in FINAL_STATES)
    return Retention("trade_events", "ts", days, what="events of finished trades",
                     where=f"trade_id IN (SELECT id FROM trades WHERE status IN ({finished}))")
