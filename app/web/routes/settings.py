"""The Settings page: the trading settings rec-trade-manager enforces, editable (each value
checked against its range, then a confirmation of old -> new, then the manager's
``PUT /settings``, which audits every change), the audit trail (who changed what, when,
old -> new), and, under "Advanced", the environment rec-web runs with (read-only: nothing
writes a config file)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.web import data, manager, panels, settings_form
from app.web.data import read
from app.web.deps import CurrentSession, Form, State, require_session
from app.web.views import page

log = logging.getLogger(__name__)
router = APIRouter(dependencies=[Depends(require_session)], include_in_schema=False)


async def shown(request: Request, state: State, status: int = 200, **ctx) -> HTMLResponse:
    """The page with the settings as they are now, the audit trail and the environment."""
    current = await read(data.trading_settings, state.pool, settings_form.KEYS)
    trail = await read(settings_form.audit, state.pool)
    return page(request, "settings.html", status=status, current=current,
                groups=settings_form.form(current.get("data") or {}), audit=trail,
                manager_url=state.manager_url, values=panels.effective_settings(),
                saved=request.query_params.get("saved"), **{"errors": {}, **ctx})


@router.get("/settings", response_class=HTMLResponse)
async def settings(request: Request, state: State) -> HTMLResponse:
    return await shown(request, state)


@router.post("/settings/trading", response_class=HTMLResponse)
async def change(request: Request, state: State, form: Form,
                 session: CurrentSession) -> Response:
    """Check the form, ask to confirm what changes (old -> new), then send it."""
    current = (await read(data.trading_settings, state.pool, settings_form.KEYS)).get("data")
    if not current:
        return await shown(request, state, status=503)
    changes, errors = settings_form.parse(form, current)
    if errors:  # the form as typed; after a confirmation, as the settings are now
        return await shown(request, state, status=422 if "keys" not in form else 409,
                           errors=errors, typed=None if "keys" in form else form)
    if not changes:
        return await shown(request, state, nothing=True)
    if form.get("confirm") != "yes":
        return await shown(request, state, confirm=[
            {"key": k, "old": current[k]["value"], "new": v} for k, v in changes.items()],
            hidden=settings_form.as_form(changes, current))
    status, answer = await manager.call(state, session.user, "PUT", "/settings", changes)
    log.warning("trading settings %s by %s: manager answered %s", changes, session.user,
                status)
    if status >= 400:
        return await shown(request, state, status=status,
                           answer={"status": status, "body": answer})
    return RedirectResponse("/settings?saved=" + ",".join(answer.get("changed") or []),
                            status_code=303)
