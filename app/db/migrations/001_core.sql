-- rec core schema. Money is integer cents (BIGINT) or exact NUMERIC; never floating point.
-- Contract counts are NUMERIC(18,2) because Kalshi's *_fp counts allow fractions.

CREATE TABLE markets (
    ticker              TEXT PRIMARY KEY,
    event_ticker        TEXT NOT NULL,
    series_ticker       TEXT,
    title               TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL,
    strike_type         TEXT,
    floor_strike        NUMERIC(20, 6),
    cap_strike          NUMERIC(20, 6),
    open_time           TIMESTAMPTZ,
    close_time          TIMESTAMPTZ,
    expiration_time     TIMESTAMPTZ,
    result              TEXT,
    raw                 JSONB NOT NULL DEFAULT '{}'::jsonb,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX markets_event_idx ON markets (event_ticker);
CREATE INDEX markets_status_close_idx ON markets (status, close_time);

-- a row only when something changed (the feed compares before inserting)
CREATE TABLE market_ticks (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticker              TEXT NOT NULL REFERENCES markets (ticker),
    ts                  TIMESTAMPTZ NOT NULL,
    yes_bid_cents       INTEGER CHECK (yes_bid_cents BETWEEN 0 AND 100),
    yes_ask_cents       INTEGER CHECK (yes_ask_cents BETWEEN 0 AND 100),
    last_price_cents    INTEGER CHECK (last_price_cents BETWEEN 0 AND 100),
    volume              NUMERIC(18, 2),
    open_interest       NUMERIC(18, 2)
);
CREATE INDEX market_ticks_ticker_ts_idx ON market_ticks (ticker, ts DESC);

-- the latest order book per market, one row per price level and side
CREATE TABLE orderbook_levels (
    ticker              TEXT NOT NULL REFERENCES markets (ticker),
    side                TEXT NOT NULL CHECK (side IN ('yes', 'no')),
    price_cents         INTEGER NOT NULL CHECK (price_cents BETWEEN 1 AND 99),
    quantity            NUMERIC(18, 2) NOT NULL CHECK (quantity > 0),
    seq                 BIGINT NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (ticker, side, price_cents)
);

CREATE TABLE balances (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    balance_cents       BIGINT NOT NULL,
    portfolio_value_cents BIGINT
);
CREATE INDEX balances_ts_idx ON balances (ts DESC);

CREATE TABLE positions (
    ticker              TEXT PRIMARY KEY,
    position            NUMERIC(18, 2) NOT NULL,  -- positive: yes contracts, negative: no
    market_exposure_cents BIGINT NOT NULL DEFAULT 0,
    realized_pnl_cents  BIGINT NOT NULL DEFAULT 0,
    fees_paid_cents     BIGINT NOT NULL DEFAULT 0,
    resting_orders_count INTEGER NOT NULL DEFAULT 0,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE trades (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticker              TEXT NOT NULL,
    side                TEXT NOT NULL CHECK (side IN ('yes', 'no')),
    status              TEXT NOT NULL,
    quantity            NUMERIC(18, 2) NOT NULL CHECK (quantity > 0),
    entry_price_cents   INTEGER CHECK (entry_price_cents BETWEEN 1 AND 99),
    exit_price_cents    INTEGER CHECK (exit_price_cents BETWEEN 1 AND 99),
    fees_cents          BIGINT NOT NULL DEFAULT 0,
    pnl_cents           BIGINT,
    strategy            TEXT,
    opened_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_at           TIMESTAMPTZ
);
CREATE INDEX trades_status_idx ON trades (status);

CREATE TABLE trade_events (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trade_id            BIGINT NOT NULL REFERENCES trades (id),
    ts                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    kind                TEXT NOT NULL,
    from_status         TEXT,
    to_status           TEXT,
    detail              JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX trade_events_trade_idx ON trade_events (trade_id, ts);

CREATE TABLE orders (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_order_id     TEXT NOT NULL UNIQUE,
    exchange_order_id   TEXT UNIQUE,
    trade_id            BIGINT REFERENCES trades (id),
    ticker              TEXT NOT NULL,
    side                TEXT NOT NULL CHECK (side IN ('yes', 'no')),
    action              TEXT NOT NULL CHECK (action IN ('buy', 'sell')),
    order_type          TEXT NOT NULL DEFAULT 'limit',
    price_cents         INTEGER CHECK (price_cents BETWEEN 1 AND 99),
    quantity            NUMERIC(18, 2) NOT NULL CHECK (quantity > 0),
    filled_quantity     NUMERIC(18, 2) NOT NULL DEFAULT 0,
    remaining_quantity  NUMERIC(18, 2) NOT NULL DEFAULT 0,
    status              TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX orders_status_idx ON orders (status);

CREATE TABLE fills (
    trade_id            TEXT PRIMARY KEY,          -- the exchange's fill/trade id: never twice
    exchange_order_id   TEXT NOT NULL,
    ticker              TEXT NOT NULL,
    side                TEXT NOT NULL CHECK (side IN ('yes', 'no')),
    action              TEXT NOT NULL CHECK (action IN ('buy', 'sell')),
    count               NUMERIC(18, 2) NOT NULL CHECK (count > 0),
    yes_price_cents     INTEGER NOT NULL CHECK (yes_price_cents BETWEEN 0 AND 100),
    no_price_cents      INTEGER NOT NULL CHECK (no_price_cents BETWEEN 0 AND 100),
    fee_cents           BIGINT NOT NULL DEFAULT 0,
    is_taker            BOOLEAN NOT NULL,
    created_time        TIMESTAMPTZ NOT NULL
);
CREATE INDEX fills_order_idx ON fills (exchange_order_id);
CREATE INDEX fills_ticker_time_idx ON fills (ticker, created_time);

CREATE TABLE settlements (
    ticker              TEXT PRIMARY KEY,
    market_result       TEXT NOT NULL,
    yes_count           NUMERIC(18, 2) NOT NULL DEFAULT 0,
    no_count            NUMERIC(18, 2) NOT NULL DEFAULT 0,
    yes_total_cost_cents BIGINT NOT NULL DEFAULT 0,
    no_total_cost_cents BIGINT NOT NULL DEFAULT 0,
    revenue_cents       BIGINT NOT NULL DEFAULT 0,
    settled_time        TIMESTAMPTZ NOT NULL
);
