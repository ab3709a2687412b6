-- Every backup run: the db host's rec-backup.timer (kind 'scheduled'), `rec db migrate`
-- before it applies migrations to a database that has data ('pre-migrate'), and an operator's
-- `rec backup run` ('manual'). `rec status` and the Services page show the last good one.
CREATE TABLE backup_runs (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                TEXT NOT NULL CHECK (kind IN ('scheduled', 'pre-migrate', 'manual')),
    host                TEXT NOT NULL,
    started_at          TIMESTAMPTZ NOT NULL,
    duration_sec        NUMERIC(12, 3) NOT NULL,
    result              TEXT NOT NULL CHECK (result IN ('ok', 'failed')),
    file                TEXT,                  -- the dump on `host` (NULL when none was written)
    size_bytes          BIGINT,
    copied_to           TEXT,                  -- the off-host copy, when one was made
    error               TEXT
);
CREATE INDEX backup_runs_good_idx ON backup_runs (started_at DESC) WHERE result = 'ok';

-- the db host's backup identity (PostgreSQL role "rec-backup", made by the rec_backup role
-- before the app hosts migrate) reads every table through pg_read_all_data and records its
-- runs here; it writes nothing else
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rec-backup') THEN
        GRANT SELECT, INSERT ON backup_runs TO "rec-backup";
    END IF;
END $$;
