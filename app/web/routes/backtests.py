"""The backtest reports `rec backtest FILE --report` left under the state dir
(app/backtest/reports.py): their index, newest first (``/backtests``), each report's page
in the dashboard's layout (``/backtests/<name>``) and its files, read-only
(``/backtests/<name>/<file>``: its charts and the page as written). A name or file that is
not a report's is a 404, whatever it spells (``..``, an encoded slash, a symbolic link out).
All need a session."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from app.backtest import reports
from app.web.deps import State, require_session
from app.web.errors import error
from app.web.views import page

router = APIRouter(dependencies=[Depends(require_session)], include_in_schema=False)
TYPES = {".png": "image/png", ".html": "text/html; charset=utf-8"}


def _root(state: State) -> Path | None:
    return reports.home(state.settings) if state.settings is not None else None


@router.get("/backtests", response_class=HTMLResponse)
async def index(request: Request, state: State) -> HTMLResponse:
    root = _root(state)
    return page(request, "backtests.html", root=root,
                reports=reports.listing(root) if root is not None else [])


@router.get("/backtests/{name}", response_class=HTMLResponse)
async def one(request: Request, state: State, name: str) -> Response:
    root = _root(state)
    found = reports.report(root, name) if root is not None else None
    if found is None:
        return error(404, "not_found", f"name: no backtest report {name!r}", "name")
    return page(request, "backtest.html", report_name=name, report=found)


@router.get("/backtests/{name}/{file}")
async def asset(state: State, name: str, file: str) -> Response:
    root = _root(state)
    path = reports.asset(root, name, file) if root is not None else None
    if path is None:
        return error(404, "not_found", f"file: no file {file!r} in backtest report {name!r}",
                     "file")
    return FileResponse(path, media_type=TYPES.get(path.suffix, "application/octet-stream"))
