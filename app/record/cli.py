"""`rec record export|info|import`: recordings (docs/record.md).

Exit status: 0 done; 1 nothing recorded in the window, or the database failed; 2 bad input
(a window with from >= to, a file this rec cannot read); 78 configuration errors.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

EX_USAGE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    rec = subparsers.add_parser("record", help="recordings: export a window, show, import")
    sub = rec.add_subparsers(dest="record_command", required=True)
    e = sub.add_parser("export", help="write a window of the stored history to one Parquet file")
    e.add_argument("--from", dest="start", required=True, type=when,
                   help="window start (ISO 8601, UTC unless it says; a date is its midnight)")
    e.add_argument("--to", dest="end", required=True, type=when, help="window end (excluded)")
    e.add_argument("--series", action="append", default=[],
                   help="series ticker (repeatable or comma-separated; default: all)")
    e.add_argument("file", type=Path)
    e.set_defaults(func=cmd_export)
    i = sub.add_parser("info", help="print a recording's manifest")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="the whole manifest as JSON")
    i.set_defaults(func=cmd_info)
    m = sub.add_parser("import", help="load a recording into this installation (idempotent)")
    m.add_argument("file")
    m.set_defaults(func=cmd_import)


def when(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _say(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def _dsn() -> str:
    from app import config
    from app.db.pool import conninfo

    return conninfo(config.load_or_exit(), "rec-record")


def cmd_export(args: argparse.Namespace) -> int:
    import psycopg

    from app.record.export import NothingRecorded, Window, describe, export

    if args.start >= args.end:
        print(f"rec record export: --from {args.start.isoformat()} is not before --to "
              f"{args.end.isoformat()}", file=sys.stderr)
        return EX_USAGE
    series = [s for item in args.series for s in item.split(",") if s]
    window = Window(args.start, args.end, series)
    try:
        manifest = export(_dsn(), window, args.file, _say)
    except NothingRecorded as exc:
        print(f"rec record export: {exc}; no file written", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"rec record export: database: {str(exc).strip()}", file=sys.stderr)
        return 1
    print(f"wrote {args.file} ({args.file.stat().st_size} bytes)")
    print("\n".join(describe(manifest)))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from app.record.export import describe, dumps
    from app.record.schema import BadFile, read_manifest

    try:
        manifest = read_manifest(args.file)
    except BadFile as exc:
        print(f"rec record info: {exc}", file=sys.stderr)
        return EX_USAGE
    print(dumps(manifest) if args.json else "\n".join(describe(manifest)))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    import psycopg

    from app.record.load import dumps, load
    from app.record.schema import BadFile

    try:
        added = load(_dsn(), args.file, _say)
    except BadFile as exc:
        print(f"rec record import: {exc}", file=sys.stderr)
        return EX_USAGE
    except psycopg.Error as exc:
        print(f"rec record import: database: {str(exc).strip()}", file=sys.stderr)
        return 1
    print(f"imported {args.file}: " + (dumps(added) if added else "nothing new"))
    return 0
