"""Server-rendered HTML: the Jinja2 templates with rec's filters, the navigation, and the
render of a whole page or of one panel alone (``/fragments/<name>``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.trading.settings_ranges import RANGES
from app.trading.states import FINAL_STATES
from app.web.deps import session_of, web_state
from app.web.formats import FILTERS

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update({f.__name__: f for f in FILTERS})
# every trading setting's range (the table rec-trade-manager enforces) for the forms' bounds
templates.env.globals["setting_ranges"] = RANGES
templates.env.globals["final_states"] = FINAL_STATES  # a trade that will not change again

NAV = [("/", "Overview"), ("/monitor", "Trade monitor"), ("/markets", "Markets"),
       ("/trades", "Trades"), ("/manual", "Manual trading"), ("/model", "Model"),
       ("/backtests", "Backtests"), ("/services", "Services"), ("/settings", "Settings"),
       ("/docs", "API")]


def indices(state: Any) -> list[str]:
    """The indices rec-price-feed writes (``price_feed_indices``): the index chart's choice."""
    return [i for i in str(getattr(state.settings, "price_feed_indices", "") or "").split(",")
            if i]


def page(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    state = web_state(request)
    s = getattr(request.state, "session", None) or session_of(request)
    return templates.TemplateResponse(
        request, name, {"title": request.app.title, "nav": NAV, "path": request.url.path,
                        "session": s, "mode": getattr(state.settings, "account_mode", None),
                        "stale_after": state.stale_after, "indices": indices(state), **ctx},
        status_code=status)


def panel(request: Request, name: str, ctx: dict) -> HTMLResponse:
    return templates.TemplateResponse(
        request, f"panels/{name}.html",
        {"p": ctx, "stale_after": web_state(request).stale_after,
         "session": request.state.session, "q": request.query_params},
        headers={"Cache-Control": "no-store"})
