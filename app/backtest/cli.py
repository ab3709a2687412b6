"""`rec backtest [--from] [--to] [--speed] [--settings FILE] [--latency-ms] FILE`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path


def _ms(text: str | None) -> int | None:
    if not text:
        return None
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)


def report_dir(arg: str, settings) -> Path:
    """``--report DIR``: DIR; ``--report`` alone: a new directory under the state dir's
    backtests/, where the dashboard lists it (app/backtest/reports.py)."""
    from app.backtest import reports

    return Path(arg) if arg else reports.new_dir(reports.home(settings))


def cmd_backtest(args: argparse.Namespace) -> int:
    from app import config
    from app.backtest.run import Run, backtest, load_trading
    from app.record.schema import BadFile, read_manifest

    try:
        read_manifest(args.file)
        run = Run(args.file, _ms(args.start), _ms(args.end), args.speed,
                  load_trading(args.settings), args.latency_ms, not args.free)
    except (BadFile, ValueError, OSError) as exc:
        print(f"rec backtest: {exc}", file=sys.stderr)
        return 2
    if args.sweep:
        from app.backtest import sweep
        try:
            combos = sweep.grid(args.sweep)
        except (ValueError, OSError) as exc:
            print(f"rec backtest: {exc}", file=sys.stderr)
            return 2
        print(sweep.table(sweep.sweep(run, combos, args.jobs)))
        return 0
    settings = config.load()
    result = asyncio.run(backtest(settings, run, lambda s: print(s, file=sys.stderr)))
    print(result.text())
    if args.report is not None:
        from app.backtest import page
        where = page.write(result, report_dir(args.report, settings),
                           f"rec backtest: {Path(args.file).name}")
        print(f"report: {where}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("backtest", help="the trading bundle on a replayed recording "
                                               "(docs/replay.md)")
    p.add_argument("file", help="a recording (`rec record export`)")
    p.add_argument("--from", dest="start", help="window start, ISO 8601 (default: the file's)")
    p.add_argument("--to", dest="end", help="window end, ISO 8601 (default: the file's)")
    p.add_argument("--speed", type=float, default=60.0,
                   help="simulated seconds per wall second (default 60)")
    p.add_argument("--settings", help="trading settings, JSON (rec-trade-manager's PUT "
                                      "/settings body)")
    p.add_argument("--latency-ms", type=int, default=0,
                   help="simulated ms an order takes to reach the exchange")
    p.add_argument("--sweep", metavar="GRID", help="JSON: trading setting -> values; one "
                                                  "backtest per combination, ranked")
    p.add_argument("--jobs", type=int, help="a sweep's parallel runs (default: CPU count)")
    p.add_argument("--report", metavar="DIR", nargs="?", const="",
                   help="write the report as an HTML page with its charts in DIR; without "
                        "DIR (put --report after FILE): in <state_dir>/backtests/<time>/, "
                        "listed on the dashboard's Backtests page")
    p.add_argument("--free", action="store_true",
                   help="no lockstep: the services run on their own timers (faster; two runs "
                        "then differ, docs/replay.md, \"Determinism\")")
    p.set_defaults(func=cmd_backtest)
