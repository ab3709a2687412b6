-- Every failed run of a rec unit, recorded by `rec unit-failed` (the units' ExecStopPost= and
-- the OnFailure= unit rec-failure@.service), for the dashboard. The journal has them at crit too.
CREATE TABLE unit_failures (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    unit                TEXT NOT NULL,
    result              TEXT NOT NULL,       -- systemd's SERVICE_RESULT: exit-code, watchdog, ...
    exit_code           TEXT NOT NULL DEFAULT '',
    exit_status         TEXT NOT NULL DEFAULT '',
    failures_in_a_row   INTEGER NOT NULL DEFAULT 1,
    gave_up             BOOLEAN NOT NULL DEFAULT false  -- systemd will not restart it
);
CREATE INDEX unit_failures_ts_idx ON unit_failures (ts DESC);
