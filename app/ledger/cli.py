"""`rec ledger check [--json]`: rec's books against the exchange, side by side; exit 0 when
they are equal, 1 with the differences, 2 when either record cannot be read. A comparison that
finds differences is made again a few seconds later and only what both found is reported
(app/ledger/standing.py ``confirmed``): a fill in flight between the two reads is not one."""

from __future__ import annotations

import argparse
import asyncio
import sys

EX_UNREADABLE = 2


async def check(settings):
    """Read both records and compare them (the exchange through app.exchange_client's client)."""
    import psycopg

    from app import exchange_client
    from app.db.pool import conninfo
    from app.ledger import compare, records
    from app.ledger.standing import confirmed

    async with exchange_client.rest_client(settings) as rest:
        await rest.start()
        async with await psycopg.AsyncConnection.connect(
                conninfo(settings, "rec-ledger")) as conn:

            async def comparison() -> compare.LedgerResult:
                record = await records.read_exchange(rest)  # first: see app/ledger/standing.py
                return compare.compare(await records.read_books(conn), record)

            return await confirmed(comparison)


def cmd_check(args: argparse.Namespace) -> int:
    from app import config
    from app.ledger import report

    try:
        result = asyncio.run(check(config.load_or_exit()))
    except Exception as exc:  # the database or the exchange: say which and why, no traceback
        print(f"rec: ledger check failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EX_UNREADABLE
    print(report.to_json(result) if args.json else report.side_by_side(result))
    return 0 if result.equal else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    ledger = subparsers.add_parser("ledger", help="rec's books against the exchange")
    sub = ledger.add_subparsers(dest="ledger_command", required=True)
    c = sub.add_parser("check", help="orders, fills, positions, cash, P&L and fees: DB vs "
                                     "exchange side by side; exit 1 on any difference")
    c.add_argument("--json", action="store_true", help="the result as JSON")
    c.set_defaults(func=cmd_check)
