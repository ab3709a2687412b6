"""The rec-web ASGI app. Health: /healthz (the process answers), /readyz (its dependencies)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse

Check = Callable[[], Awaitable[None]]


def create_app(checks: dict[str, Check]) -> FastAPI:
    app = FastAPI(title="rec", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        results: dict[str, dict] = {}
        for name, check in checks.items():
            try:
                await check()
            except Exception as exc:
                results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip()}
            else:
                results[name] = {"ok": True}
        failed = [name for name, r in results.items() if not r["ok"]]
        body = {"status": "ok" if not failed else "fail", "failed": failed, "checks": results}
        return JSONResponse(body, status_code=503 if failed else 200)

    return app
