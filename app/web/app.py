"""The rec-web ASGI app.

- ``/healthz``: the process answers.
- ``/readyz``: rec-web's own dependencies (the database); 503 names the failed check.
- ``/api/health``: the bundle's aggregate (database, exchange, every rec-* unit); 503 if any fails.
- ``/``: a status page rendered on the server (works with scripts disabled), refreshed every 5 s.
"""

from __future__ import annotations

import html

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from app.web.health import Check, aggregate, run_checks


def create_app(ready_checks: dict[str, Check], bundle_checks: dict[str, Check],
               title: str = "rec") -> FastAPI:
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        body = await run_checks(ready_checks)
        return JSONResponse(body, status_code=http_status(body))

    @app.get("/api/health")
    async def health() -> JSONResponse:
        body = await aggregate(bundle_checks)
        return JSONResponse(body, status_code=http_status(body))

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        body = await aggregate(bundle_checks)
        return HTMLResponse(render_status(title, body), status_code=http_status(body))

    return app


def http_status(body: dict) -> int:
    return 200 if body["status"] == "ok" else 503


def _row(cells: list[str], ok: bool) -> str:
    cls = "ok" if ok else "bad"
    tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
    return f'<tr class="{cls}">{tds}</tr>'


def render_status(title: str, body: dict) -> str:
    checks = "".join(
        _row([name, "ok" if r["ok"] else r.get("error", "failed")], r["ok"])
        for name, r in body["checks"].items())
    if body["units"] is None:
        units = f'<tr><td colspan="4">{html.escape(body["units_note"] or "")}</td></tr>'
    else:
        units = "".join(_row([u["unit"], f'{u["active"]}/{u["sub"]}', str(u["restarts"]),
                              u["result"]], u["ok"]) for u in body["units"])
    overall = "all healthy" if body["status"] == "ok" else "unhealthy: " + ", ".join(
        body["failed"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}: {html.escape(body["status"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1d2329; }}
table {{ border-collapse: collapse; margin-bottom: 1.5rem; min-width: 28rem; }}
th, td {{ text-align: left; padding: .35rem .8rem; border-bottom: 1px solid #d8dde3; }}
tr.ok td:first-child::before {{ content: "\\25CF  "; color: #1a7f37; }}
tr.bad td:first-child::before {{ content: "\\25CF  "; color: #cf222e; }}
tr.bad {{ background: #fff1f0; }}
.status {{ font-weight: 600; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="status" id="overall">{html.escape(overall)}</p>
<h2>Checks</h2>
<table id="checks"><tr><th>check</th><th>state</th></tr>{checks}</table>
<h2>Units</h2>
<table id="units"><tr><th>unit</th><th>state</th><th>restarts</th><th>result</th></tr>
{units}</table>
</body></html>
"""
