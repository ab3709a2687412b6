"""rec-web's error answers: ``{"code", "message"[, "field"]}`` with the status, for the API
and for anything a page cannot serve; a page without a session redirects to the login."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.runtime.http import MAX_BODY_BYTES, BodyTooLarge

log = logging.getLogger(__name__)
SAFE = ("GET", "HEAD", "OPTIONS")
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
NOT_INPUT = ("body", "query", "path")  # where a value came from: not part of its name


class NotLoggedIn(Exception):
    pass


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error(status: int, code: str, message: str, field: str | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"code": code, "message": message}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def to_login(request: Request, exc: NotLoggedIn) -> Response:
    path = request.url.path
    if path.startswith(("/api/", "/fragments/", "/openapi.json")) or request.method not in SAFE:
        return error(401, "login_required", "log in first: POST /login")
    target = path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if isinstance(exc.__cause__, BodyTooLarge):  # FastAPI's 400 for a body it could not read
        return await body_too_large(request, exc.__cause__)
    return error(exc.status_code, HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}"),
                 str(exc.detail), headers=exc.headers)


async def refused(request: Request, exc: Refused) -> Response:
    return error(exc.status, exc.code, exc.message, exc.field)


def _field_name(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p not in NOT_INPUT) or "body"


async def invalid_input(request: Request, exc: RequestValidationError) -> Response:
    errs = exc.errors()
    first = errs[0] if errs else {"loc": (), "msg": "invalid input"}
    name = _field_name(first.get("loc", ()))
    return JSONResponse({"code": "invalid_field", "message": f"{name}: {first['msg']}",
                         "field": name,
                         "fields": {_field_name(e.get("loc", ())): e["msg"] for e in errs}},
                        status_code=422)


async def body_too_large(request: Request, exc: BodyTooLarge) -> Response:
    """A body with no Content-Length (chunked) found too large while a route read it."""
    client = request.client
    log.warning("request body from %s:%s over %d bytes: answered 413",
                client.host if client else "unknown", client.port if client else 0,
                MAX_BODY_BYTES)
    return error(413, "payload_too_large", "the request body is too large",
                 headers={"Connection": "close"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(NotLoggedIn, to_login)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(RequestValidationError, invalid_input)
    app.add_exception_handler(BodyTooLarge, body_too_large)
