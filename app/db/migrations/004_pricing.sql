-- Pricing: rec-price-feed (the settlement index, one row per second), rec-coordinator
-- (probability per strike, strike table, watchlist) and `rec model build` (versioned models).
-- Prices are exact NUMERIC; deltas and momentum are percentages.

-- ---- rec-price-feed ------------------------------------------------------------------------

-- one row per index per second it was published; a second with no value has no row (a gap
-- stays a gap). d*m: percent change against the row that many minutes earlier (NULL when
-- that row is missing); momentum: 0.3 d1m + 0.25 d2m + 0.2 d3m + 0.15 d4m + 0.05 d15m
-- + 0.05 d30m (NULL unless every delta is known)
CREATE TABLE index_prices (
    index_name          TEXT NOT NULL,
    ts                  TIMESTAMPTZ NOT NULL CHECK (ts = date_trunc('second', ts)),
    price               NUMERIC(20, 8) NOT NULL CHECK (price > 0),
    avg_1m              NUMERIC(20, 8),
    d1m                 NUMERIC(14, 8),
    d2m                 NUMERIC(14, 8),
    d3m                 NUMERIC(14, 8),
    d4m                 NUMERIC(14, 8),
    d15m                NUMERIC(14, 8),
    d30m                NUMERIC(14, 8),
    momentum            NUMERIC(14, 8),
    received_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (index_name, ts)
);
CREATE INDEX index_prices_ts_idx ON index_prices (ts);

-- the feed's view of each index: live | stale | waiting (the dashboard and readyz read it)
CREATE TABLE index_freshness (
    index_name          TEXT PRIMARY KEY,
    state               TEXT NOT NULL CHECK (state IN ('live', 'stale', 'waiting')),
    last_ts             TIMESTAMPTZ,                -- the newest stored second
    last_received_at    TIMESTAMPTZ,
    detail              TEXT NOT NULL DEFAULT '',
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- ---- rec-coordinator -----------------------------------------------------------------------

-- the current rows of each followed series, one per market (replaced every cycle)
CREATE TABLE strike_table (
    market_ticker       TEXT PRIMARY KEY,
    series_ticker       TEXT NOT NULL,
    event_ticker        TEXT NOT NULL,
    computed_at         TIMESTAMPTZ NOT NULL,
    close_time          TIMESTAMPTZ NOT NULL,
    index_name          TEXT NOT NULL,
    index_ts            TIMESTAMPTZ NOT NULL,       -- the index row the numbers come from
    strike              NUMERIC(20, 8) NOT NULL,
    index_price         NUMERIC(20, 8) NOT NULL,
    momentum            NUMERIC(14, 8),
    buffer              NUMERIC(20, 8) NOT NULL,    -- index_price - strike, dollars
    buffer_pct          NUMERIC(14, 8) NOT NULL,
    probability         NUMERIC(8, 6) NOT NULL CHECK (probability BETWEEN 0 AND 1),  -- P(YES)
    prob_source         TEXT NOT NULL CHECK (prob_source IN ('fingerprint', 'lognormal')),
    sample_size         INTEGER NOT NULL,
    model_version       BIGINT,
    yes_ask             NUMERIC(10, 4),             -- NULL: no offer on that side
    no_ask              NUMERIC(10, 4),
    yes_diff_cents      NUMERIC(10, 4),             -- 100 P(YES) - 100 yes_ask
    no_diff_cents       NUMERIC(10, 4),             -- 100 P(NO) - 100 no_ask
    volume              NUMERIC(18, 2),
    active_side         TEXT NOT NULL CHECK (active_side IN ('yes', 'no')),
    time_to_close_sec   INTEGER NOT NULL,
    window_sec          INTEGER NOT NULL,           -- the settlement average's window
    window_progress     NUMERIC(6, 4) NOT NULL CHECK (window_progress BETWEEN 0 AND 1),
    window_avg          NUMERIC(20, 8)              -- running average of the observed part
);
CREATE INDEX strike_table_series_idx ON strike_table (series_ticker);

-- the strikes that pass the configured filters, one row per (market, side)
CREATE TABLE watchlist (
    market_ticker       TEXT NOT NULL,
    side                TEXT NOT NULL CHECK (side IN ('yes', 'no')),
    series_ticker       TEXT NOT NULL,
    probability         NUMERIC(8, 6) NOT NULL,     -- of the side
    ask                 NUMERIC(10, 4) NOT NULL,
    diff_cents          NUMERIC(10, 4) NOT NULL,
    volume              NUMERIC(18, 2),
    computed_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (market_ticker, side)
);
CREATE INDEX watchlist_series_idx ON watchlist (series_ticker);

-- each followed series' last cycle: readers see which series failed and why
CREATE TABLE series_status (
    series_ticker       TEXT PRIMARY KEY,
    ok                  BOOLEAN NOT NULL,
    error               TEXT,
    index_name          TEXT,
    event_ticker        TEXT,
    rows                INTEGER NOT NULL DEFAULT 0,
    cycle_ms            NUMERIC(10, 3),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- ---- rec model build -----------------------------------------------------------------------

-- versioned probability models; the coordinator uses the newest active one per index
CREATE TABLE prob_models (
    version             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    index_name          TEXT NOT NULL,
    kind                TEXT NOT NULL DEFAULT 'fingerprint',
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    history_from        TIMESTAMPTZ,
    history_to          TIMESTAMPTZ,
    train_samples       BIGINT NOT NULL,
    params              JSONB NOT NULL,             -- bucket edges, horizons, min samples
    tables              JSONB NOT NULL,             -- the fingerprint: counts per cell
    calibration         JSONB,                      -- held-out Brier scores, reliability
    reliability_png     BYTEA,                      -- the reliability plot
    active              BOOLEAN NOT NULL DEFAULT true
);
CREATE INDEX prob_models_index_idx ON prob_models (index_name, version DESC);
