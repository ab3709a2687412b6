"""The kill switch, one click from every page (the top bar): ``GET /kill-switch`` asks to
confirm (with the choice to close every open trade too), ``POST /kill-switch`` with
``confirm=yes`` passes it to rec-trade-manager's ``POST /kill-switch`` (which audits it and
stops every new entry). While it is on, every page says so (the heartbeat carries it:
:mod:`app.web.freshness`)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.web import data, manager
from app.web.data import read
from app.web.deps import CurrentSession, Form, State, require_session
from app.web.routes.login import safe_next
from app.web.views import page

log = logging.getLogger(__name__)
router = APIRouter(dependencies=[Depends(require_session)], include_in_schema=False)


async def current(state) -> dict:
    found = await read(data.trading_settings, state.pool, ("kill_switch", "kill_switch_close_open"))
    return {k: v["value"] for k, v in (found.get("data") or {}).items()}


@router.get("/kill-switch", response_class=HTMLResponse)
async def ask(request: Request, state: State, on: str = "1", next: str = "/") -> HTMLResponse:
    return page(request, "kill.html", on=on != "0", back=safe_next(next),
                now=await current(state), answer=None)


@router.post("/kill-switch", response_class=HTMLResponse)
async def switch(request: Request, state: State, form: Form,
                 session: CurrentSession) -> Response:
    on = form.get("on") != "0"
    close_open = on and form.get("close_open") == "on"
    back = safe_next(str(form.get("next") or "/"))
    if form.get("confirm") != "yes":
        return page(request, "kill.html", on=on, back=back, now=await current(state),
                    answer=None)
    status, answer = await manager.call(state, session.user, "POST", "/kill-switch",
                                        {"on": on, "close_open": close_open})
    log.warning("kill switch %s (close open trades: %s) by %s: manager answered %s",
                "on" if on else "off", close_open, session.user, status)
    if status >= 400:
        return page(request, "kill.html", status=status, on=on, back=back,
                    now=await current(state), answer={"status": status, "body": answer})
    return RedirectResponse(back, status_code=303)
