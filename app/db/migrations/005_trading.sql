-- Trading: rec-trade-manager (the one writer of trades), rec-trade-executor (orders),
-- rec-trade-supervisor (exit rules), rec-auto-entry (entry rules).
-- Prices are NUMERIC dollars in the trade's own side (sub-cent prices exist); P&L in cents.

ALTER TABLE trades
    ADD COLUMN event_ticker      TEXT,
    ADD COLUMN market_close_time TIMESTAMPTZ,
    ADD COLUMN requested_count   NUMERIC(18, 2),
    ADD COLUMN limit_price       NUMERIC(10, 4),       -- the open order's limit
    ADD COLUMN entry_price       NUMERIC(10, 4),       -- average fill price of the open
    ADD COLUMN exit_price        NUMERIC(10, 4),       -- average fill price of the close
    ADD COLUMN entry_cost        NUMERIC(14, 4),       -- dollars paid for the contracts
    ADD COLUMN exit_proceeds     NUMERIC(14, 4),       -- dollars received (close or settlement)
    ADD COLUMN fees              NUMERIC(14, 4) NOT NULL DEFAULT 0,  -- exact, from the fills
    ADD COLUMN entry_method      TEXT NOT NULL DEFAULT 'manual',
    ADD COLUMN close_method      TEXT,                 -- manual | auto | settlement | kill_switch
    ADD COLUMN close_rule        TEXT,                 -- the exit rule that fired
    ADD COLUMN close_attempts    INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN close_limit_price NUMERIC(10, 4),
    ADD COLUMN open_key          TEXT UNIQUE,          -- idempotency key of the open intent
    ADD COLUMN market_result     TEXT,
    ADD COLUMN win               BOOLEAN,
    ADD COLUMN reason            TEXT,                 -- why rejected/canceled/expired
    ADD COLUMN updated_at        TIMESTAMPTZ NOT NULL DEFAULT now();
CREATE INDEX trades_ticker_status_idx ON trades (ticker, status);

-- every POST /trades intent by its idempotency key: a repeat answers the first answer
CREATE TABLE trade_intents (
    idempotency_key     TEXT PRIMARY KEY,
    intent              TEXT NOT NULL CHECK (intent IN ('open', 'close')),
    trade_id            BIGINT REFERENCES trades (id),
    request             JSONB NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- the executor's orders: one row per trade leg, written by the manager with the trade's
-- transition, sent and resolved by the executor. client_order_id is derived from the trade
-- and the leg, so a resend can never make a second order.
CREATE TABLE trade_orders (
    client_order_id     TEXT PRIMARY KEY,
    trade_id            BIGINT NOT NULL REFERENCES trades (id),
    leg                 TEXT NOT NULL,                 -- open | close1 | close2 ...
    ticker              TEXT NOT NULL,
    side                TEXT NOT NULL CHECK (side IN ('yes', 'no')),
    action              TEXT NOT NULL CHECK (action IN ('buy', 'sell')),
    count               NUMERIC(18, 2) NOT NULL CHECK (count > 0),
    price               NUMERIC(10, 4) NOT NULL,       -- limit, in `side`'s dollars
    time_in_force       TEXT NOT NULL,
    strategy            TEXT NOT NULL,
    order_group_id      TEXT,
    cancel_on_pause     BOOLEAN NOT NULL DEFAULT false,
    state               TEXT NOT NULL DEFAULT 'new',   -- new | accepted | rejected | expired
    exchange_order_id   TEXT,
    fill_count          NUMERIC(18, 2),
    remaining_count     NUMERIC(18, 2),
    error_code          TEXT,
    error_text          TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at             TIMESTAMPTZ,
    acked_at            TIMESTAMPTZ,
    ack_ms              NUMERIC(12, 3),                -- send -> acknowledgement, ms
    UNIQUE (trade_id, leg)
);
CREATE INDEX trade_orders_state_idx ON trade_orders (state) WHERE state = 'new';

-- trading settings: behind the manager's API (GET/PUT /settings), an audit row per change
CREATE TABLE trading_settings (
    key                 TEXT PRIMARY KEY,
    value               JSONB NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE trading_settings_audit (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    key                 TEXT NOT NULL,
    old_value           JSONB,
    new_value           JSONB NOT NULL,
    changed_by          TEXT NOT NULL DEFAULT 'api'
);

INSERT INTO trading_settings (key, value, description) VALUES
  ('install_id', to_jsonb(substr(md5(random()::text || clock_timestamp()::text), 1, 8)),
   'prefix of every client_order_id of this database (never reused after a reset)'),
  ('kill_switch', 'false', 'block every new entry'),
  ('kill_switch_close_open', 'false', 'with the kill switch: close every open trade too'),
  ('max_contracts_per_trade', '25', 'risk: contracts in one trade'),
  ('max_contracts_per_market', '50', 'risk: contracts open in one market'),
  ('max_open_exposure_dollars', '250', 'risk: dollars paid for open trades'),
  ('max_daily_loss_dollars', '100', 'risk: realised loss today (UTC) that stops entries'),
  ('open_time_in_force', '"fill_or_kill"', 'time in force of entry orders'),
  ('close_time_in_force', '"fill_or_kill"', 'time in force of exit orders'),
  ('pause_policy', '"wait"', 'during an exchange pause: wait (send after it) or expire'),
  ('intent_max_wait_sec', '120', 'an intent not sendable for this long expires'),
  ('strategies', '{"manual": {"contracts_limit": 100, "cancel_order_on_pause": true}, "auto_entry": {"contracts_limit": 100, "cancel_order_on_pause": true}, "supervisor": {"contracts_limit": 200, "cancel_order_on_pause": false}}',
   'per strategy: the exchange order group''s contract limit (rolling 15 s) and cancel_order_on_pause; every close goes in the supervisor group, which the kill switch leaves open'),
  ('auto_stop', 'true', 'supervisor: exit rules may close trades'),
  ('exit_probability_enabled', 'true', 'exit when P(side) < threshold while time to close >= min'),
  ('exit_probability_threshold', '0.40', 'probability of the trade''s side'),
  ('exit_probability_min_ttc_sec', '60', 'only while at least this long to the close'),
  ('exit_momentum_enabled', 'true', 'exit on a momentum spike against the position'),
  ('exit_momentum_threshold', '0.36', 'momentum (percent, rec-price-feed) >= +t closes NO trades, <= -t closes YES trades'),
  ('stop_loss_enabled', 'false', 'exit when the close price falls this far below the entry'),
  ('stop_loss_cents', '30', 'per contract'),
  ('take_profit_enabled', 'false', 'exit when the close price rises this far above the entry'),
  ('take_profit_cents', '20', 'per contract'),
  ('exit_max_slippage_cents', '5', 'exit limit = close price minus this'),
  ('auto_entry_enabled', 'false', 'rec-auto-entry enters trades (off by default)'),
  ('auto_entry_dry_run', 'false', 'log what would be entered, enter nothing'),
  ('auto_entry_min_probability', '0.95', 'P(side) at least'),
  ('auto_entry_min_diff_cents', '1', 'probability minus ask, in cents, at least'),
  ('auto_entry_min_ttc_sec', '120', 'enter only with at least this long to the close'),
  ('auto_entry_max_ttc_sec', '900', 'and at most this long'),
  ('auto_entry_strike_cooldown_sec', '900', 'per strike and side after an entry'),
  ('auto_entry_spike_enabled', 'true', 'pause entries on a momentum spike'),
  ('auto_entry_spike_threshold', '0.36', '|momentum| (percent) at least this is a spike'),
  ('auto_entry_spike_cooldown_sec', '900', 'entries stay paused this long after the spike'),
  ('auto_entry_spike_cooldown_threshold', '0.30', 'the pause lasts while |momentum| is at least this'),
  ('auto_entry_position_size', '1', 'contracts per entry before the multiplier'),
  ('auto_entry_multiplier', '1', 'size = position size x multiplier'),
  ('auto_entry_max_slippage_cents', '0', 'limit = ask + this');

-- the exchange's own safety net: one order group per strategy
CREATE TABLE order_groups (
    strategy            TEXT PRIMARY KEY,
    order_group_id      TEXT NOT NULL,
    contracts_limit     NUMERIC(18, 2) NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    triggered_at        TIMESTAMPTZ
);

-- rec-trade-supervisor: each open trade's latest view (every second)
CREATE TABLE trade_monitor (
    trade_id            BIGINT PRIMARY KEY REFERENCES trades (id),
    ts                  TIMESTAMPTZ NOT NULL,
    index_price         NUMERIC(20, 6),
    probability         NUMERIC(8, 6),                 -- of the trade's side
    buffer              NUMERIC(20, 6),
    momentum            NUMERIC(12, 4),
    time_in_trade_sec   INTEGER,
    time_to_close_sec   INTEGER,
    close_price         NUMERIC(10, 4),                -- what closing would get per contract
    unrealised_pnl_cents BIGINT
);

-- rec-auto-entry: every decision, taken or skipped, with its fields
CREATE TABLE auto_entry_decisions (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    market_ticker       TEXT,
    side                TEXT,
    decision            TEXT NOT NULL,                 -- enter | dry_run | skip
    reason              TEXT NOT NULL,
    fields              JSONB NOT NULL DEFAULT '{}'::jsonb,
    trade_id            BIGINT
);
CREATE INDEX auto_entry_decisions_ts_idx ON auto_entry_decisions (ts DESC);
