"""The priced series: which series settle on which index (``coordinator_series``), and the
state of each one's last pricing cycle as ``series_status`` holds it.

rec-coordinator writes the state (:func:`status_columns`) into ``series_status.state``
(migration 015) and rec-web's health reads that column: a state, never parsed from text. The
``error`` column is the message for people (a warming series' reason reads "warming up: ...").
"""

from __future__ import annotations

from enum import StrEnum


class SeriesState(StrEnum):
    PRICED = "priced"
    WARMING = "warming"  # not priced yet for want of history that comes by itself with time
    FAILED = "failed"


_WARMING_TEXT = "warming up: "


def parse_series(text: str) -> list[tuple[str, str]]:
    """``"KXBTCD:BRTI,KXETHD:ETHUSD_RTI"`` -> ``[("KXBTCD", "BRTI"), ("KXETHD", "ETHUSD_RTI")]``."""
    out = []
    for item in text.split(","):
        series, _, index = item.strip().partition(":")
        if series:
            out.append((series, index))
    return out


def status_columns(state: SeriesState, reason: str | None) -> tuple[str, bool, str | None]:
    """``(state, ok, error)`` of a ``series_status`` row in ``state`` (``reason``: why, or a
    warning of a priced series)."""
    if state is SeriesState.WARMING:
        return state.value, False, _WARMING_TEXT + (reason or "")
    return state.value, state is SeriesState.PRICED, reason
