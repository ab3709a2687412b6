"""A ledger result printed side by side (rec's books | the exchange) or as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal

from app.ledger.compare import LedgerResult


def side_by_side(r: LedgerResult) -> str:
    width = max(len(f.name) for f in r.figures)
    lines = [f"{'':<{width}}  {'rec books':>14}  {'exchange':>14}"]
    for f in r.figures:
        mark = "" if f.exchange == "-" or f.books == f.exchange else "  <- differs"
        lines.append(f"{f.name:<{width}}  {f.books!s:>14}  {f.exchange!s:>14}{mark}")
    if r.equal:
        lines.append("the books equal the exchange")
        return "\n".join(lines)
    lines.append(f"{len(r.differences)} difference(s):")
    for d in r.differences:
        money = f" [{d.cents:+d} cents]" if d.cents is not None else ""
        lines.append(f"  {d.kind}: {d.detail}{money}")
    return "\n".join(lines)


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def to_dict(r: LedgerResult) -> dict:
    return {"equal": r.equal,
            "figures": {f.name: {"books": _plain(f.books), "exchange": _plain(f.exchange)}
                        for f in r.figures},
            "differences": [_plain(asdict(d)) for d in r.differences]}


def to_json(r: LedgerResult) -> str:
    return json.dumps(to_dict(r), indent=2)
