"""The models of rec-web's JSON API and the error answers its routes document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class CheckOut(BaseModel):
    ok: bool
    error: str | None = None
    note: str | None = None  # not checked: the check it depends on failed


class UnitOut(BaseModel):
    unit: str
    active: str
    sub: str
    restarts: int
    result: str
    status: str
    ok: bool


class HealthOut(BaseModel):
    """The last results of the background checks; ``status`` "fail" answers 503."""

    status: str
    failed: list[str]
    checks: dict[str, CheckOut]
    age_sec: float | None


class AggregateOut(HealthOut):
    units: list[UnitOut] | None  # None: not running under systemd (units_note says why)
    units_note: str | None


class AliveOut(BaseModel):
    status: str


class ErrorOut(BaseModel):
    code: str
    message: str
    field: str | None = None


class Panel(BaseModel):
    """A panel's data, or why there is none: ``missing`` (a table that does not exist yet)
    or ``error`` (the database did not answer)."""

    missing: str | None = None
    error: str | None = None
    data: Any = None


class MarketsPanel(Panel):
    """The followed markets; ``feed_stale``: rec-market-feed's own report is older than the
    stale banner's limit, so every live market is stale."""

    feed_stale: bool | None = None


class IndexPanel(Panel):
    """An index's seconds; ``marks``: the strikes of its open series and the settlement
    window of the next close (with ``index=``)."""

    marks: dict | None = None


class ManagerOut(BaseModel):
    """rec-trade-manager's answer, passed on as it came (``status`` is its HTTP status)."""

    status: int
    body: Any


UNHEALTHY = {503: {"description": "a check failed: `failed` names it"}}
AUTH = {401: {"model": ErrorOut, "description": "no session: log in at /login"}}
WRITE = {**AUTH, 400: {"model": ErrorOut, "description": "the body is not JSON"},
         403: {"model": ErrorOut, "description": "CSRF token or Origin refused"},
         422: {"model": ErrorOut, "description": "invalid input: `field` names it"},
         502: {"model": ErrorOut, "description": "rec-trade-manager did not answer"},
         503: {"model": ErrorOut, "description": "no rec-trade-manager in this build"}}
