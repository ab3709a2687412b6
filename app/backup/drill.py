"""The restore drill: a backup restored into a scratch database (created and dropped here), its
books checked against the live ones, and the restore time. The live database's contents are
never touched: restoring into it stays the explicit ``rec db restore``, and nothing restores
at boot.

What the books must show (read by app/ledger/records.py, as ``rec ledger check`` reads them):
every trade, leg (trade_orders) and fill (account_fills) in the backup is in the live books;
a fill is immutable, so it is equal; a trade finished at the backup's time, and its legs, are
equal; a trade still open then may have moved on since, so only what names it (ticker, side;
the legs' trade, leg, ticker, side, action, count) must be equal.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

LATEST_SQL = ("SELECT file, started_at FROM backup_runs WHERE result = 'ok' AND file IS NOT NULL "
              "ORDER BY started_at DESC LIMIT 50")


class DrillError(Exception):
    pass


@dataclass
class DrillResult:
    file: Path
    restore_sec: float
    counts: dict[str, int]
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def report(self) -> str:
        counts = ", ".join(f"{n} {what}" for what, n in self.counts.items())
        head = (f"restored {self.file} into a scratch database in {self.restore_sec:.2f}s; "
                f"checked {counts} against the live books: ")
        if self.ok:
            return head + "equal"
        return head + f"{len(self.differences)} difference(s)\n" + "\n".join(
            f"  {d}" for d in self.differences)


def _identity(leg) -> tuple:
    return (leg.trade_id, leg.leg, leg.ticker, leg.side, leg.action, leg.count)


def compare(then, now) -> list[str]:
    """What the backup's books (``then``) hold that the live books (``now``) do not (Books of
    app/ledger/records.py)."""
    from app.ledger.compare import UNFINISHED

    out: list[str] = []
    live_trades = {t.id: t for t in now.trades}
    finished: set[int] = set()
    for t in then.trades:
        live = live_trades.get(t.id)
        if live is None:
            out.append(f"trade {t.id} ({t.ticker}): in the backup, not in the live books")
            continue
        if t.status not in UNFINISHED:
            finished.add(t.id)
        if (t != live) if t.id in finished else ((t.ticker, t.side) != (live.ticker, live.side)):
            out.append(f"trade {t.id}: backup {t} != live {live}")
    live_legs = now.leg_index[0]
    for leg in then.legs:
        live = live_legs.get(leg.client_order_id)
        if live is None:
            out.append(f"leg {leg.client_order_id}: in the backup, not in the live books")
        elif (leg != live) if leg.trade_id in finished else _identity(leg) != _identity(live):
            out.append(f"leg {leg.client_order_id}: backup {leg} != live {live}")
    live_fills = {(f.trade_id, f.order_id): f for f in now.fills}
    for f in then.fills:
        live = live_fills.get((f.trade_id, f.order_id))
        if live != f:
            out.append(f"fill {f.trade_id}/{f.order_id}: backup {f} != live {live}")
    return out


def _first_here(files: list[str]) -> Path | None:
    return next((Path(f) for f in files if Path(f).is_file()), None)


async def latest_file(conn) -> Path:
    """The newest good backup in backup_runs whose file is on this host."""
    rows = await (await conn.execute(LATEST_SQL)).fetchall()
    if found := await asyncio.to_thread(_first_here, [file for file, _ in rows]):
        return found
    raise DrillError("no good backup in backup_runs has its file on this host"
                     if rows else "no good backup recorded in backup_runs yet")


def restore_into(dsn: str, file: Path) -> float:
    """pg_restore ``file`` into the database ``dsn`` names; the seconds it took."""
    from app.db.backup_job import tool

    if not file.is_file():
        raise DrillError(f"{file}: no such backup file")
    t0 = time.monotonic()
    proc = subprocess.run([tool("pg_restore"), "--no-owner", "--no-acl", "--exit-on-error",
                           f"--dbname={dsn}", str(file)], capture_output=True, text=True)
    if proc.returncode != 0:
        detail = " ".join(proc.stderr.strip().splitlines()[-3:])
        raise DrillError(f"{file} does not restore (a damaged or truncated dump?): {detail}")
    return time.monotonic() - t0


async def drill(dsn: str, file: Path | None = None) -> DrillResult:
    """Restore ``file`` (default: the newest good backup on this host) into a scratch
    database next to the live one ``dsn`` names, compare the books, drop the scratch
    database. The role connecting needs CREATEDB and read access to every table."""
    import psycopg

    from app.db.scratch import scratch_database
    from app.ledger.records import read_books

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as live:
        file = file or await latest_file(live)
        async with scratch_database(live, dsn, "rec_drill") as target:
            seconds = await asyncio.to_thread(restore_into, target, file)
            async with await psycopg.AsyncConnection.connect(target) as restored:
                then = await read_books(restored)
            now = await read_books(live)
    counts = {"trades": len(then.trades), "legs": len(then.legs), "fills": len(then.fills)}
    return DrillResult(file, seconds, counts, compare(then, now))
