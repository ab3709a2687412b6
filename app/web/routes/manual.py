"""Manual trading from the pages: open and close a trade, each confirmed once more, and the
auto-entry/auto-stop settings of the Trade monitor, all through rec-trade-manager. Every
order is a warning in the log with the user and the manager's answer."""

from __future__ import annotations

import logging
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.trading import settings_ranges
from app.web import manager, panels, ticket
from app.web.deps import CurrentSession, Form, State, require_session
from app.web.intent_form import KEY_RE, validate_close, validate_open
from app.web.routes.pages import MONITOR_PANELS
from app.web.views import page

log = logging.getLogger(__name__)
router = APIRouter(dependencies=[Depends(require_session)], include_in_schema=False)
BLANK = {"market": "", "side": "yes", "count": "1", "limit_price": ""}
AUTO_SIZES = ("auto_entry_position_size", "auto_entry_multiplier")


def result(request: Request, status: int, answer: Any, ctx: dict, form: dict) -> HTMLResponse:
    """The manager's answer on the Manual trading page."""
    return page(request, "manual.html", status=200 if status < 400 else status, form=form,
                errors={}, step="result", result={"status": status, "body": answer}, **ctx)


@router.get("/manual", response_class=HTMLResponse)
async def manual(request: Request, state: State) -> HTMLResponse:
    q = request.query_params
    form = {"market": q.get("market", ""), "side": q.get("side", "yes"),
            "count": q.get("count", "1"), "limit_price": q.get("limit_price", "")}
    values, errs = validate_open(form)
    return page(request, "manual.html", form=form, errors={}, step="form",
                ticket=await ticket.ticket(state.pool, {} if errs else values),
                ticket_market=await panels.market_beside(state, form["market"]),
                **await panels.context(state, request, ["open_trades"]))


def form_or_confirm(request: Request, ctx: dict, posted: dict[str, str], errs: dict[str, str],
                    shown_on_error: dict, step: str, **confirm: Any) -> HTMLResponse | None:
    """The form again with its errors (422), or the step that asks to confirm it (with a new
    idempotency key); None once confirmed."""
    if errs:
        return page(request, "manual.html", status=422, form=shown_on_error, errors=errs,
                    step="form", **ctx)
    if posted.get("confirm") != "yes":
        return page(request, "manual.html", errors={}, step=step, key=manager.new_key(),
                    **confirm, **ctx)
    return None


async def submitted(request: Request, state: State, user: str, intent: dict,
                    form: dict) -> tuple[int, HTMLResponse]:
    """rec-trade-manager's status for the intent, and the page that shows its answer."""
    status, answer = await manager.call(state, user, "POST", "/trades", intent, manager.WAIT)
    return status, result(request, status, answer,
                          await panels.context(state, request, ["open_trades"]), form)


@router.post("/manual/open", response_class=HTMLResponse)
async def open_trade(request: Request, state: State, form: Form,
                     session: CurrentSession) -> HTMLResponse:
    values, errs = validate_open(form)
    terms = await ticket.ticket(state.pool, {} if errs else values)
    errs = errs or ticket.limit_error(values, await ticket.settings(state.pool))
    ctx = {**await panels.context(state, request, ["open_trades"]), "ticket": terms,
           "ticket_market": await panels.market_beside(state, str(values["market"]))}
    if shown := form_or_confirm(request, ctx, form, errs, form, "confirm", form=values):
        return shown
    key = str(form.get("idempotency_key") or "")
    if not re.match(KEY_RE, key):
        return page(request, "manual.html", status=422, form=values,
                    errors={"idempotency_key": "idempotency_key: missing; confirm again"},
                    step="form", **ctx)
    status, shown = await submitted(request, state, session.user,
                                    manager.open_intent(key, **values), values)
    log.warning("manual open %s %s x%s @ %s by %s: manager answered %s", values["market"],
                values["side"], values["count"], values["limit_price"], session.user, status)
    return shown


@router.post("/manual/close", response_class=HTMLResponse)
async def close_trade(request: Request, state: State, form: Form,
                      session: CurrentSession) -> HTMLResponse:
    close, errs = validate_close(form)
    ctx = await panels.context(state, request, ["open_trades"])
    if shown := form_or_confirm(request, ctx, form, errs, BLANK, "confirm_close", form=BLANK,
                                close=close):
        return shown
    intent = manager.close_intent(str(form.get("idempotency_key") or ""), **close)
    status, shown = await submitted(request, state, session.user, intent, BLANK)
    log.warning("manual close of trade %s by %s: manager answered %s", close["trade_id"],
                session.user, status)
    return shown


@router.post("/manual/cancel", response_class=HTMLResponse)
async def cancel_order(request: Request, state: State, form: Form,
                       session: CurrentSession) -> HTMLResponse:
    """Give up a resting entry (what filled stays), confirmed once more."""
    cancel, errs = validate_close({"trade_id": form.get("trade_id")})
    ctx = await panels.context(state, request, ["open_trades"])
    if shown := form_or_confirm(request, ctx, form, errs, BLANK, "confirm_cancel", form=BLANK,
                                cancel=cancel):
        return shown
    status, answer = await manager.call(state, session.user, "POST",
                                        f"/trades/{cancel['trade_id']}/cancel", None)
    log.warning("manual cancel of trade %s's entry by %s: manager answered %s",
                cancel["trade_id"], session.user, status)
    return result(request, status, answer, await panels.context(state, request,
                                                                ["open_trades"]), BLANK)


def auto_settings(form: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """The Trade monitor's auto form as the manager's settings, or what is wrong with it."""
    body: dict[str, Any] = {"auto_entry_enabled": form.get("auto_entry_enabled") == "on",
                            "auto_stop": form.get("auto_stop") == "on"}
    for key in AUTO_SIZES:  # the ranges rec-trade-manager enforces, checked before sending
        try:
            body[key] = settings_ranges.check(key, Decimal(str(form.get(key) or "").strip()))
        except (ValueError, InvalidOperation):
            return body, f"{key}: must be {settings_ranges.RANGES[key].describe()}"
    return body, None


@router.post("/monitor/auto", response_class=HTMLResponse)
async def auto_trading(request: Request, state: State, form: Form,
                       session: CurrentSession) -> Response:
    body, wrong = auto_settings(form)
    if wrong:
        return page(request, "monitor.html", status=422, auto_error=wrong,
                    **await panels.context(state, request, MONITOR_PANELS))
    status, answer = await manager.call(state, session.user, "PUT", "/settings", body)
    log.warning("trading settings %s by %s: manager answered %s", body, session.user, status)
    if status >= 400:
        return page(request, "monitor.html", status=status,
                    auto_error=f"rec-trade-manager answered {status}: "
                               f"{answer.get('message', answer)}",
                    **await panels.context(state, request, MONITOR_PANELS))
    return RedirectResponse("/monitor", status_code=303)
