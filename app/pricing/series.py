"""The priced series: which series settle on which index (``coordinator_series``), and the
state of each one's last pricing cycle as ``series_status`` holds it.

rec-coordinator writes the state (:func:`status_columns`), rec-web's health reads it
(:func:`state_of`); neither knows how the row carries it. ``series_status`` has no state
column: a warming series is ``ok = false`` with its reason behind :data:`_WARMING_TEXT`, and
this module is the one place that writes and reads that form.
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


def status_columns(state: SeriesState, reason: str | None) -> tuple[bool, str | None]:
    """``(ok, error)`` of a ``series_status`` row in ``state`` (``reason``: why, or a
    warning of a priced series)."""
    if state is SeriesState.WARMING:
        return False, _WARMING_TEXT + (reason or "")
    return state is SeriesState.PRICED, reason


def state_of(ok: bool, error: str | None) -> SeriesState:
    """The state a ``series_status`` row's ``(ok, error)`` carries."""
    if ok:
        return SeriesState.PRICED
    if (error or "").startswith(_WARMING_TEXT):
        return SeriesState.WARMING
    return SeriesState.FAILED
