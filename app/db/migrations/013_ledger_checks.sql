-- rec-trade-manager's standing reconciliation (app/ledger/standing.py): one row per run of the
-- ledger comparison (at start, then every ledger_reconcile_interval_sec). ok: the books equal
-- the exchange; figures: the side-by-side counts (books | exchange); differences: each one as
-- `rec ledger check --json` prints it; adopted: trades made that run for unowned fills; error:
-- why the run could not read a record (then ok is false and figures/differences are empty).
-- Retention: the writer keeps the newest 10080 rows (a week at the default 60 s) and deletes
-- older ones in the statement that inserts (app.ledger.standing.KEEP_ROWS).
CREATE TABLE ledger_checks (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    checked_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    ok                  BOOLEAN NOT NULL,
    difference_count    INTEGER NOT NULL,
    figures             JSONB NOT NULL DEFAULT '{}'::jsonb,
    differences         JSONB NOT NULL DEFAULT '[]'::jsonb,
    adopted             INTEGER NOT NULL DEFAULT 0,
    error               TEXT
);
