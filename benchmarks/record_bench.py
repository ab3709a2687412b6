#!/usr/bin/env python3
"""How fast `rec record import` and `rec record export` go: the checked-in recording
(tests/fixtures/rec-sim.parquet, or --file) imported into a PostgreSQL of its own, then
exported whole, in-process (the CLI's own functions); prints rows a second each way and the
load average beside them.

    .venv/bin/python -m benchmarks.record_bench [--file F]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

from app.db.migrate import migrate
from app.record import export, load, schema
from testkit import pg as pgserver

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", type=Path, default=ROOT / "tests/fixtures/rec-sim.parquet")
    args = ap.parse_args()
    manifest = schema.read_manifest(str(args.file))
    server = pgserver.start()
    try:
        server.create_app_db("rec", "rec", "bench-pw")
        dsn = server.dsn("rec", "bench-pw", "rec")
        migrate(dsn, progress=lambda _: None)
        t0 = time.perf_counter()
        added = load.load(dsn, str(args.file), lambda _: None)
        t_import = time.perf_counter() - t0
        window = export.Window(*(datetime.fromisoformat(manifest["window"][k])
                                 for k in ("from", "to")), list(manifest["series"]))
        out = Path(tempfile.mkdtemp(prefix="rec-record-bench-")) / "again.parquet"
        t0 = time.perf_counter()
        again = export.export(dsn, window, out, lambda _: None)
        t_export = time.perf_counter() - t0
        rows = manifest["rows"]
        print(f"{args.file.name}: {rows:,} rows, {args.file.stat().st_size / 2**20:.2f} MiB; "
              f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"  import: {t_import:6.1f} s  {rows / t_import:9,.0f} rows/s  ({load.dumps(added)})")
        print(f"  export: {t_export:6.1f} s  {rows / t_export:9,.0f} rows/s  "
              f"({again['segments_read']} segments; {out.stat().st_size / 2**20:.2f} MiB)")
        out.unlink()
        return 0
    finally:
        pgserver.remove(server)


if __name__ == "__main__":
    raise SystemExit(main())
