"""`rec model build`: fingerprint models from stored index history, with a calibration report.

For each index (default: those of ``coordinator_series``): read ``index_prices`` of the last
``--days`` days, build the fingerprint on the first part, score it on the held-out last
``--holdout`` of the span beside the lognormal model and a constant 0.5, draw the reliability
plot, and store everything as a new active version in ``prob_models`` (``NOTIFY
prob_model``): rec-coordinator picks it up at its next cycle, with no restart. Progress goes
to stderr, the report to stdout (``--json`` for machines). Exit 0 when every index was
built, 1 when one had too little history (the others are still built), 78 on config errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

MIN_HOURS = 3  # less history than this cannot fill a model, nor hold any out


def register(subparsers: argparse._SubParsersAction) -> None:
    model = subparsers.add_parser("model", help="probability models").add_subparsers(
        dest="model_command", required=True)
    b = model.add_parser("build", help="build fingerprint models from stored index history "
                                       "and print their calibration report")
    b.add_argument("--index", action="append", help="index id (repeatable; default: the "
                   "indices of REC_COORDINATOR_SERIES)")
    b.add_argument("--days", type=float, default=30.0, help="history to use (default 30)")
    b.add_argument("--holdout", type=float, default=0.2,
                   help="share of the span held out for calibration (default 0.2)")
    b.add_argument("--stride", type=int, default=7, help="seconds between build samples")
    b.add_argument("--test-stride", type=int, default=61,
                   help="seconds between held-out pricing points")
    b.add_argument("--strike-step-pct", type=float, default=0.25,
                   help="spacing of the held-out strikes, percent of the price")
    b.add_argument("--png", type=Path, help="also write the reliability plot here "
                   "(INDEX in the name is replaced by the index id)")
    b.add_argument("--no-save", action="store_true", help="report only; store no model")
    b.add_argument("--json", action="store_true", help="the report as JSON")
    b.set_defaults(func=cmd_build)


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def read_history(conn: Any, index: str, days: float) -> list[tuple[int, float]]:
    rows: list[tuple[int, float]] = []
    sql = ("COPY (SELECT extract(epoch FROM ts)::bigint, price FROM index_prices "
           f"WHERE index_name = {_literal(index)} AND ts > now() - interval "
           f"'{float(days)} days' ORDER BY ts) TO STDOUT")
    t0 = time.monotonic()
    with conn.cursor() as cur, cur.copy(sql) as copy:
        for line in bytes(b"".join(bytes(chunk) for chunk in copy)).splitlines():
            ts, price = line.split(b"\t")
            rows.append((int(ts), float(price)))
            if len(rows) % 500_000 == 0:
                _progress(f"{index}: read {len(rows):,} rows")
    _progress(f"{index}: read {len(rows):,} rows in {time.monotonic() - t0:.1f}s")
    return rows


def _literal(text: str) -> str:
    if not text.replace("_", "").isalnum():
        raise ValueError(f"invalid index id {text!r}")
    return f"'{text}'"


def build_index(rows: list[tuple[int, float]], index: str, args: argparse.Namespace,
                min_samples: int, vol_lookback: int, min_vol: int) -> dict[str, Any]:
    from app.pricing.build import History, build, calibrate
    from app.pricing.model import Fingerprint
    from app.pricing.plot import reliability_png

    h = History.from_rows(rows)
    split = int(len(h) * (1 - args.holdout))
    t0 = time.monotonic()
    params, tables, samples = build(h, split, stride=args.stride, progress=_progress)
    built = time.monotonic() - t0
    model = Fingerprint.from_json(None, params, tables)
    report = calibrate(h, model, split, len(h), test_stride=args.test_stride,
                       strike_step_pct=args.strike_step_pct, vol_lookback=vol_lookback,
                       min_vol_samples=min_vol, min_samples=min_samples, progress=_progress)
    report.update(index=index, rows=len(rows), train_samples=samples,
                  history_from=h.t0, history_to=h.t0 + len(h) - 1, held_out_from=h.t0 + split,
                  build_sec=round(built, 2), calibrate_sec=round(time.monotonic() - t0 - built,
                                                                   2))
    png = reliability_png([report["reliability"], report["reliability_lognormal"]])
    return {"params": params, "tables": tables, "report": report, "png": png}


def describe(r: dict[str, Any]) -> str:
    def f(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4f}"

    lines = [
        f"{r['index']}: {r['rows']:,} rows, {r['train_samples']:,} build samples, "
        f"{r['points']:,} held-out points x strikes = {r['predictions']:,} predictions",
        f"  Brier: model {f(r['brier'])} (fingerprint on {r['fingerprint_share']:.0%}, "
        f"lognormal where a cell is thin) | lognormal {f(r['brier_lognormal'])} | "
        f"constant 0.5 {r['brier_baseline_0_5']:.4f}",
        f"  on fingerprint cells only: fingerprint {f(r['brier_fingerprint_cells_only'])} | "
        f"lognormal {f(r['brier_lognormal_same_cells'])}",
        "  reliability (bin: n, mean predicted -> observed; model | lognormal):",
    ]
    for a, b in zip(r["reliability"], r["reliability_lognormal"], strict=True):
        def cell(x: dict) -> str:
            return (f"{x['n']:>7} {x['mean_p']:.3f} -> {x['observed']:.3f}" if x["n"]
                    else f"{0:>7}   -   ->   -  ")
        lines.append(f"    {a['bin']}: {cell(a)} | {cell(b)}")
    return "\n".join(lines)


def cmd_build(args: argparse.Namespace) -> int:
    import psycopg

    from app import config
    from app.db.pool import conninfo
    from app.db.pool import describe as where
    from app.pricing.series import parse_series

    s = config.load_or_exit()
    indices = args.index or list(dict.fromkeys(ix for _, ix in
                                               parse_series(s.coordinator_series)))
    if not 0 < args.holdout < 1:
        print("rec: --holdout must be between 0 and 1", file=sys.stderr)
        return 2
    status = 0
    reports = []
    try:
        conn = psycopg.connect(conninfo(s, "rec-model-build"), autocommit=True)
    except psycopg.OperationalError as exc:
        print(f"rec: database {where(s)}: {str(exc).strip()}", file=sys.stderr)
        return 1
    with conn:
        for index in indices:
            _progress(f"{index}: reading {args.days:g} days of index_prices")
            rows = read_history(conn, index, args.days)
            hours = (rows[-1][0] - rows[0][0]) / 3600 if rows else 0.0
            if hours < MIN_HOURS:
                print(f"rec: {index}: {len(rows):,} rows over {hours:.1f} h; a model needs at "
                      f"least {MIN_HOURS} h of history: not built (the coordinator keeps "
                      f"using the lognormal)", file=sys.stderr)
                status = 1
                continue
            out = build_index(rows, index, args, s.coordinator_min_fingerprint_samples,
                              s.coordinator_vol_lookback_min * 60, s.coordinator_min_vol_samples)
            report = out["report"]
            if args.png:
                path = Path(str(args.png).replace("INDEX", index))
                path.write_bytes(out["png"])
                report["png_path"] = str(path)
            if not args.no_save:
                with conn.transaction():
                    cur = conn.execute(
                        "INSERT INTO prob_models (index_name, kind, history_from, history_to, "
                        "train_samples, params, tables, calibration, reliability_png) VALUES "
                        "(%s, 'fingerprint', to_timestamp(%s), to_timestamp(%s), %s, %s, %s, "
                        "%s, %s) RETURNING version",
                        (index, report["history_from"], report["history_to"],
                         report["train_samples"], json.dumps(out["params"]),
                         json.dumps(out["tables"]), json.dumps(report), out["png"]))
                    report["version"] = cur.fetchone()[0]
                    conn.execute("SELECT pg_notify('prob_model', %s)", (index,))
                _progress(f"{index}: stored as model version {report['version']}")
            reports.append(report)
            if not args.json:
                print(describe(report), flush=True)
    if args.json:
        print(json.dumps(reports, indent=2))
    return status
