-- Data in: rec-market-feed and rec-account-sync.
-- Prices are exact NUMERIC dollars (tapered_deci_cent markets quote sub-cent prices), counts
-- NUMERIC contracts (Kalshi's *_fp counts allow fractions). 001's cent columns stay for the
-- tables the trading services own.

-- ---- rec-market-feed -------------------------------------------------------------------------

-- which markets the feed follows (discovered over REST, kept by market_lifecycle_v2)
ALTER TABLE markets ADD COLUMN followed BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE markets ADD COLUMN price_level_structure TEXT;

-- History tables: ids grow with received_at, so retention deletes the lowest ids (no index
-- on received_at: it would cost more than a quarter of the change-only storage).

-- a row only when price, a bid/ask or its size, volume or open interest changed
CREATE TABLE feed_ticks (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticker              TEXT NOT NULL,
    ts                  TIMESTAMPTZ NOT NULL,       -- exchange time of the message
    received_at         TIMESTAMPTZ NOT NULL,
    source              TEXT NOT NULL CHECK (source IN ('ws', 'http')),
    yes_bid             NUMERIC(10, 4),
    yes_ask             NUMERIC(10, 4),
    yes_bid_size        NUMERIC(18, 2),
    yes_ask_size        NUMERIC(18, 2),
    last_price          NUMERIC(10, 4),
    volume              NUMERIC(18, 2),
    open_interest       NUMERIC(18, 2)
);
CREATE INDEX feed_ticks_ticker_ts_idx ON feed_ticks (ticker, ts DESC);

-- every change of one book level: the level's new size (0: the level is gone)
CREATE TABLE feed_book_changes (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticker              TEXT NOT NULL,
    received_at         TIMESTAMPTZ NOT NULL,
    source              TEXT NOT NULL CHECK (source IN ('ws', 'http')),
    side                TEXT NOT NULL CHECK (side IN ('yes', 'no')),
    price               NUMERIC(10, 4) NOT NULL,
    quantity            NUMERIC(18, 2) NOT NULL CHECK (quantity >= 0),
    seq                 BIGINT
);
CREATE INDEX feed_book_changes_ticker_idx ON feed_book_changes (ticker, id);

-- compact full books: at every (re)sync and every market_feed_snapshot_interval_sec
CREATE TABLE feed_book_snapshots (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticker              TEXT NOT NULL,
    received_at         TIMESTAMPTZ NOT NULL,
    source              TEXT NOT NULL CHECK (source IN ('ws', 'http')),
    reason              TEXT NOT NULL,              -- initial | resync | periodic | poll
    yes_levels          JSONB NOT NULL,             -- [[price, size], ...] best first
    no_levels           JSONB NOT NULL
);
CREATE INDEX feed_book_snapshots_ticker_idx ON feed_book_snapshots (ticker, id DESC);

-- the current book of every followed market, one row per level (what strategies read)
CREATE TABLE feed_book_levels (
    ticker              TEXT NOT NULL,
    side                TEXT NOT NULL CHECK (side IN ('yes', 'no')),
    price               NUMERIC(10, 4) NOT NULL,
    quantity            NUMERIC(18, 2) NOT NULL CHECK (quantity > 0),
    updated_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (ticker, side, price)
);

-- public trades as the exchange reported them
CREATE TABLE feed_trades (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trade_id            TEXT NOT NULL,
    ticker              TEXT NOT NULL,
    ts                  TIMESTAMPTZ NOT NULL,
    received_at         TIMESTAMPTZ NOT NULL,
    yes_price           NUMERIC(10, 4) NOT NULL,
    count               NUMERIC(18, 2) NOT NULL,
    taker_outcome_side  TEXT
);
CREATE INDEX feed_trades_ticker_ts_idx ON feed_trades (ticker, ts DESC);

-- freshness: each followed market's last message (the dashboard and /readyz read it)
CREATE TABLE feed_freshness (
    ticker              TEXT PRIMARY KEY,
    last_message_at     TIMESTAMPTZ NOT NULL,
    last_change_at      TIMESTAMPTZ,
    snapshot_at         TIMESTAMPTZ,                -- first stored snapshot of this run
    source              TEXT NOT NULL CHECK (source IN ('ws', 'http')),
    state               TEXT NOT NULL DEFAULT 'live' -- live | closed
);

-- the feed's own state: one row per feed process name
CREATE TABLE feed_status (
    name                TEXT PRIMARY KEY,
    mode                TEXT NOT NULL,              -- ws | http | starting | stopped
    since               TIMESTAMPTZ NOT NULL,
    queue_depth         INTEGER NOT NULL DEFAULT 0,
    queue_oldest_age_ms INTEGER NOT NULL DEFAULT 0,
    followed            INTEGER NOT NULL DEFAULT 0,
    detail              JSONB NOT NULL DEFAULT '{}'::jsonb,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE VIEW feed_freshness_ages AS
SELECT ticker, state, source, last_message_at, last_change_at,
       extract(epoch FROM now() - last_message_at) AS age_sec
FROM feed_freshness;

-- ---- rec-account-sync ------------------------------------------------------------------------

CREATE TABLE account_fills (
    trade_id            TEXT NOT NULL,              -- the exchange's ids: never stored twice
    order_id            TEXT NOT NULL,              -- (the WS fill message has no fill_id)
    fill_id             TEXT,
    client_order_id     TEXT,
    ticker              TEXT NOT NULL,
    outcome_side        TEXT NOT NULL CHECK (outcome_side IN ('yes', 'no')),
    book_side           TEXT NOT NULL CHECK (book_side IN ('bid', 'ask')),
    count               NUMERIC(18, 2) NOT NULL CHECK (count > 0),
    yes_price           NUMERIC(10, 4) NOT NULL,
    no_price            NUMERIC(10, 4),
    fee                 NUMERIC(14, 4),
    is_taker            BOOLEAN,
    created_time        TIMESTAMPTZ NOT NULL,
    source              TEXT NOT NULL CHECK (source IN ('rest', 'ws')),
    stored_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (trade_id, order_id)
);
CREATE INDEX account_fills_time_idx ON account_fills (created_time);

CREATE TABLE account_orders (
    order_id            TEXT PRIMARY KEY,
    client_order_id     TEXT,
    ticker              TEXT NOT NULL,
    outcome_side        TEXT,
    book_side           TEXT,
    type                TEXT,
    status              TEXT NOT NULL,
    yes_price           NUMERIC(10, 4),
    fill_count          NUMERIC(18, 2) NOT NULL DEFAULT 0,
    remaining_count     NUMERIC(18, 2) NOT NULL DEFAULT 0,
    initial_count       NUMERIC(18, 2),
    created_time        TIMESTAMPTZ,
    last_update_time    TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX account_orders_status_idx ON account_orders (status);

CREATE TABLE account_positions (
    ticker              TEXT PRIMARY KEY,
    position            NUMERIC(18, 2) NOT NULL,    -- > 0 YES contracts, < 0 NO contracts
    market_exposure     NUMERIC(14, 4),
    realized_pnl        NUMERIC(14, 4),
    fees_paid           NUMERIC(14, 4),
    total_traded        NUMERIC(14, 4),
    resting_orders_count INTEGER,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE account_balance (
    id                  BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),  -- one row
    balance_cents       BIGINT NOT NULL,
    portfolio_value_cents BIGINT,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE account_settlements (
    ticker              TEXT PRIMARY KEY,
    event_ticker        TEXT,
    market_result       TEXT NOT NULL,
    yes_count           NUMERIC(18, 2) NOT NULL DEFAULT 0,
    no_count            NUMERIC(18, 2) NOT NULL DEFAULT 0,
    yes_total_cost      NUMERIC(14, 4),
    no_total_cost       NUMERIC(14, 4),
    revenue_cents       BIGINT NOT NULL DEFAULT 0,
    value_cents         BIGINT,
    fee_cost            NUMERIC(14, 4),
    settled_time        TIMESTAMPTZ
);

-- sync progress (cursors) and the last completed sync of each kind
CREATE TABLE account_sync_state (
    key                 TEXT PRIMARY KEY,
    value               TEXT NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
