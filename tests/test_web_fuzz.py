"""Property-based fuzzing of rec-web's own HTTP API, from the OpenAPI document rec-web
serves (`/openapi.json`), against the real service on loopback (real database, real
simulator): no 500s, only statuses the document lists, bodies that match its schemas, and
no answer slower than 1 s. Plus requests the generator rarely makes on its own."""

from __future__ import annotations

import asyncio
import html
import socket
import time

import httpx
import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings

from app.trading.settings_ranges import RANGES

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
def stack(tmp_path_factory, pg):
    """rec-web and the simulator as real processes (module scope: one start for the run):
    rec-web's URL and its process."""
    from tests.conftest import module_home, running

    with module_home(tmp_path_factory, pg, "webfuzz") as (home, _), \
            running(home, "exchange-sim", "web") as procs:
        yield f"http://127.0.0.1:{home.env['REC_WEB_PORT']}", procs[1]


@pytest.fixture(scope="module")
def web(stack):
    return stack[0]


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
    counted = {"requests": 0, "5xx": 0}
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
    print(f"\nfuzz: rec-web {mode.value}: {counted['requests']} requests, "
          f"{counted['5xx']} answered 502 manager_unreachable (no rec-trade-manager here), "
          "none any other 5xx")
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
        if response.status_code >= 500:  # 502 manager_unreachable: no manager in this stack
            counted["5xx"] += 1
            assert response.json()["code"] == "manager_unreachable", response.text[:300]
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


# ---- explicit examples of hostile requests (issue 24) -----------------------------------------

BAD_LOGIN = {"user": "admin", "password": "wrong password"}


def _service(home, start_service, **env: str) -> tuple[str, object]:
    home.env.update(env)
    svc = start_service(home, "web")
    svc.notify.wait_for("READY", "1")
    return f"http://127.0.0.1:{home.env['REC_WEB_PORT']}", svc


def _rotating_logins(url: str, n: int, password: str = "wrong password") -> list[int]:
    """``n`` logins as admin, each claiming another client address in X-Forwarded-For."""
    return [httpx.post(f"{url}/login", data={"user": "admin", "password": password},
                       headers={"X-Forwarded-For": f"198.51.100.{i + 1}"}).status_code
            for i in range(n)]


def test_forwarded_for_from_loopback_does_not_bypass_the_login_limit(rec_home_db,
                                                                    start_service):
    """No TLS proxy configured: X-Forwarded-For is not believed, so every claimed address is
    127.0.0.1, and its limit (5 a window by default) holds."""
    url, svc = _service(rec_home_db, start_service)
    codes = _rotating_logins(url, 12)
    assert 429 in codes[:11], codes
    assert "from 198.51.100." not in svc.output and "from 127.0.0.1" in svc.output


def test_behind_the_tls_proxy_the_limit_holds_per_user_too(rec_home_db, start_service):
    """The proxy trusted: each claimed address is its own client, yet the user's limit holds;
    the right password from a fresh address is still refused while the user is locked."""
    from tests.conftest import WEB_PASSWORD

    url, svc = _service(rec_home_db, start_service, REC_WEB_TRUSTED_PROXY="127.0.0.1")
    codes = _rotating_logins(url, 12)
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}, codes
    assert "failed login for user 'admin' from 198.51.100.5 (5 in the last" in svc.output
    r = httpx.post(f"{url}/login", data={"user": "admin", "password": WEB_PASSWORD},
                   headers={"X-Forwarded-For": "203.0.113.77"})
    assert r.status_code == 429 and "rec_session" not in r.cookies


def test_the_login_limiter_tracks_a_bounded_number_of_keys_oldest_first_out():
    from app.web.auth import LoginLimiter

    now = [0.0]
    limiter = LoginLimiter(max_failures=2, window=60, max_keys=3, clock=lambda: now[0])
    for key in ("a", "b", "c", "a", "d"):  # "a" failed again after "b": "b" goes first
        now[0] += 1
        limiter.failed(key)
    assert list(limiter.failures) == ["c", "a", "d"]
    assert limiter.retry_after("a") is not None and limiter.retry_after("b") is None
    for i in range(10_000):  # a spray of addresses costs at most max_keys entries
        limiter.failed(f"spray {i}")
    assert len(limiter.failures) == 3


def test_thirty_concurrent_failed_logins_leave_the_loop_responsive(rec_home_db, start_service):
    """The password checks run in worker threads, so /healthz keeps answering while they run:
    more health answers than there are password checks means none waited for a check (on
    the event loop each check would hold every answer behind it)."""
    url, _ = _service(rec_home_db, start_service, REC_WEB_LOGIN_MAX_FAILURES="1000")

    async def run() -> tuple[list[int], int]:
        async with httpx.AsyncClient(base_url=url, timeout=120,
                                     limits=httpx.Limits(max_connections=64)) as c:
            logins = [asyncio.create_task(c.post("/login", data=BAD_LOGIN))
                      for _ in range(30)]
            await asyncio.sleep(0)
            health = 0
            while not all(t.done() for t in logins):
                assert (await c.get("/healthz")).status_code == 200
                health += not all(t.done() for t in logins)
            return [t.result().status_code for t in logins], health

    codes, health = asyncio.run(run())
    assert codes == [401] * 30
    assert health > 2 * len(codes), health


def test_concurrent_guesses_cannot_outrun_the_login_limit(rec_home_db, start_service):
    """Twenty wrong passwords at once: the checks wait their turn in worker threads, yet no
    more of them are checked than the limit allows (5 a window by default)."""
    url, _ = _service(rec_home_db, start_service)

    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=120,
                                     limits=httpx.Limits(max_connections=64)) as c:
            answers = await asyncio.gather(*(c.post("/login", data=BAD_LOGIN)
                                             for _ in range(20)))
            return sorted(r.status_code for r in answers)

    assert asyncio.run(run()) == [401] * 5 + [429] * 15


TOO_LARGE = "over 1048576 bytes: answered 413"


def _chunked(path: str, body: bytes, ctype: str = "application/x-www-form-urlencoded",
             extra: str = "") -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n{extra}"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536])
                      for i in range(0, len(body), 65536))
    return head + chunks + b"0\r\n\r\n"


def _raw(web: str, request: bytes) -> tuple[int, bytes]:
    port = int(web.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while got := s.recv(65536):  # the answer closes the connection
            answer += got
    return int(answer.split()[1]), answer


@pytest.mark.parametrize(("path", "ctype"), [
    ("/login", "application/x-www-form-urlencoded"),
    ("/manual/open", "application/x-www-form-urlencoded"),
    ("/api/trades/open", "application/json")])
def test_a_chunked_body_over_a_mib_is_a_logged_413(stack, web, session, path, ctype):
    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    extra = f"Cookie: {cookie}\r\nX-CSRF-Token: {session.headers['X-CSRF-Token']}\r\n"
    body = b"user=" + b"x" * (1024 * 1024 + 1024)
    logged = stack[1].output.count(TOO_LARGE)
    status, answer = _raw(web, _chunked(path, body, ctype, extra))
    assert status == 413 and b"payload_too_large" in answer
    until_logged = time.monotonic() + 5
    while stack[1].output.count(TOO_LARGE) == logged:
        assert time.monotonic() < until_logged, "no log line for the 413"
        time.sleep(0.05)


def test_a_form_of_over_a_hundred_fields_is_a_400_naming_the_limit(web, session):
    form = "&".join(f"f{i}=1" for i in range(101))
    r = requests.post(f"{web}/login", data=form, timeout=10,
                      headers={"Content-Type": "application/x-www-form-urlencoded",
                               "Accept": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "too_many_fields"
    assert "more than 100 fields" in r.json()["message"]
    r = session.post(f"{web}/monitor/auto", data=form, timeout=10,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400


@pytest.mark.parametrize(("path", "status"), [
    ("/healthz", 200), ("/login", 200), ("/", 303), ("/api/account", 401),
    ("/static/rec.js", 200), ("/nowhere", 404)])
def test_every_answer_carries_the_security_headers(web, path, status):
    r = requests.get(f"{web}{path}", allow_redirects=False, timeout=10)
    assert r.status_code == status
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    assert "'unsafe-inline'" not in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize("path", ["/", "/monitor", "/healthz", "/readyz", "/api/session",
                                  "/api/account", "/static/rec.css", "/login", "/api/events"])
def test_head_answers_wherever_get_does(web, session, path):
    get = session.get(f"{web}{path}", allow_redirects=False, timeout=10, stream=True)
    get.close()
    head = session.head(f"{web}{path}", allow_redirects=False, timeout=10)
    assert head.status_code == get.status_code != 405
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


@pytest.mark.parametrize(("key", "value"), [
    ("auto_entry_position_size", "-5"), ("auto_entry_position_size", "1e30"),
    ("auto_entry_position_size", "2.5"), ("auto_entry_multiplier", "NaN"),
    ("auto_entry_multiplier", "Infinity"), ("auto_entry_multiplier", "0")])
def test_the_automation_form_refuses_values_outside_the_managers_ranges(web, session, key,
                                                                           value):
    """The Trade monitor's automation form is held to the range table rec-trade-manager
    enforces (#24 medium 2): nonsense is a 422 naming the field and its range, never sent."""
    form = {"auto_entry_position_size": "1", "auto_entry_multiplier": "1", key: value}
    r = session.post(f"{web}/monitor/auto", data=form, timeout=10, allow_redirects=False)
    assert r.status_code == 422, r.text[:300]
    assert f"{key}: must be {RANGES[key].describe()}" in html.unescape(r.text)


def test_the_automation_form_shows_the_managers_ranges(web, session):
    page = session.get(f"{web}/fragments/auto", timeout=10).text
    size = RANGES["auto_entry_position_size"]
    assert f'name="auto_entry_position_size" min="{size.low}" max="{size.high}"' in page
