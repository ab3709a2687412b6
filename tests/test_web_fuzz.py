"""Property-based fuzzing of rec-web's own HTTP API, from the OpenAPI document rec-web
serves (`/openapi.json`), against the real service on loopback (real database, real
simulator): no 500s, only statuses the document lists, bodies that match its schemas, and
no answer slower than 1 s. Plus requests the generator rarely makes on its own."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.openapi import from_dict  # noqa: E402

EXAMPLES = 25
MAX_SECONDS = 1.0


@pytest.fixture(scope="module")
def web(tmp_path_factory, pg):
    """rec-web and the simulator as real processes (module scope: one start for the run)."""
    from tests.conftest import module_home, running

    with module_home(tmp_path_factory, pg, "webfuzz") as (home, _), \
            running(home, "exchange-sim", "web"):
        yield f"http://127.0.0.1:{home.env['REC_WEB_PORT']}"


@pytest.fixture(scope="module")
def session(web):
    """A logged-in session: its cookie, and the CSRF token on every request."""
    from tests.conftest import WEB_PASSWORD, WEB_USER

    s = requests.Session()
    r = s.post(f"{web}/login", data={"user": WEB_USER, "password": WEB_PASSWORD},
               headers={"Accept": "application/json"}, timeout=10)
    assert r.status_code == 200, r.text
    s.headers["X-CSRF-Token"] = r.json()["csrf"]
    return s


@pytest.fixture(scope="module")
def schema(web, session):
    return from_dict(session.get(f"{web}/openapi.json", timeout=10).json())


STREAMS = {"/api/events"}  # never ends: not a request/response to fuzz


def test_openapi_lists_every_route(schema):
    paths = {op.ok().path for op in schema.get_all_operations()}
    assert {"/healthz", "/readyz", "/api/health", "/api/account", "/api/trades/open"} <= paths


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=lambda m: m.value)
def test_fuzz_every_operation(web, schema, session, mode):
    counted = {"requests": 0}
    for result in schema.get_all_operations():
        if result.ok().path in STREAMS:
            continue
        run = _runner(result.ok(), mode, web, session, counted)
        try:
            run()
        except Exception as exc:  # nothing to make invalid for a route without inputs
            if type(exc).__name__ != "Unsatisfiable":
                raise
            assert mode is GenerationMode.NEGATIVE
    if mode is GenerationMode.POSITIVE:  # (routes without inputs have nothing to negate)
        assert counted["requests"] > 0


def _runner(op, mode, web, session, counted):
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case):
        t0 = time.monotonic()
        response = case.call(base_url=web, session=session, timeout=10)
        elapsed = time.monotonic() - t0
        counted["requests"] += 1
        assert response.status_code != 500, f"{op.label}: {response.text[:300]}"
        assert elapsed < MAX_SECONDS, f"{op.label}: {elapsed:.2f} s"
        case.validate_response(response, checks=[status_code_conformance])
        if "application/json" in str(response.headers.get("content-type")):
            case.validate_response(response, checks=[response_schema_conformance])

    return run


@pytest.mark.parametrize("raw", [
    b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-A: " + b"\xff" * 100 + b"\r\n\r\n",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
    b"GET /api/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"\x00\x01\x02\x03",
])
def test_hand_probes_get_a_4xx_or_a_normal_answer(web, raw):
    port = int(web.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        head = s.recv(64)
    status = int(head.split()[1])
    assert status < 500 or status == 503, head
