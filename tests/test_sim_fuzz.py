"""Property-based API fuzzing: schemathesis generates requests for every operation the
simulator serves from the vendored OpenAPI v3.31.0, valid (positive) and invalid
(negative), signed per request with RSA-PSS over the path as sent; about half of them
carry real tickers and order ids so they reach the matching engine.

Checks on every answer: no 5xx, answered within 1 s, a status the spec lists for the
operation (or one the conformance test documents), a body that validates against the
spec (schemathesis' response_schema_conformance, and the conformance test's strict check
that names no undeclared field). Budget: EXAMPLES per operation and mode; the run prints
its request count and time. The simulator runs on a loop of its own in a thread, since
schemathesis calls it synchronously; what the run creates is canceled at the end.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from websockets.sync.client import connect as ws_connect

from app.sim.cli import register_public_key
from app.sim.rest import PREFIX, ROUTES
from tests import test_sim_conformance as conf
from tests import test_sim_fixtures as fx

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    not_a_server_error,
    response_schema_conformance,
)
from schemathesis.openapi import from_dict  # noqa: E402

EXAMPLES = 20  # per operation and generation mode
MAX_SECONDS = 1.0
SERVED = {(m, p) for m, p, *_ in ROUTES}


class KalshiSigner(requests.auth.AuthBase):
    """Signs each prepared request: timestamp + method + the path as sent, no query."""

    def __init__(self, signer) -> None:
        self.signer = signer

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers.update(self.signer.headers(r.method or "GET", urlsplit(r.url).path))
        return r


class ThreadedSim:
    """The simulator served from its own event loop on a thread."""

    def __init__(self, tmp_path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.handle, self.server = self._run(fx.start_sim(tmp_path))

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        self._run(fx.stop_sim(self.handle, self.server))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    t = ThreadedSim(tmp_path_factory.mktemp("fuzz"))
    session = requests.Session()
    session.auth = KalshiSigner(fx.signer())
    base = t.handle.base + PREFIX
    tickers = t.handle.open_tickers() + t.handle.open_tickers("KXBTC")
    seeds = {"ticker": tickers, "market_ticker": tickers,
             "event_ticker": sorted(t.handle.sim.exchange.events),
             "series_ticker": sorted(t.handle.sim.exchange.series), "order_id": []}
    for i in range(4):  # resting orders whose ids the generator can use
        r = session.post(base + fx.ORDERS, json=fx.order_body(tickers[i], count=1, price=3))
        assert r.status_code == 201, r.text
        seeds["order_id"].append(r.json()["order_id"])
    stats = {"requests": 0, "seconds": 0.0, "statuses": {}}
    yield t, session, base, seeds, stats
    r = session.delete(base + fx.ORDERS)  # cancel everything the run left resting
    assert r.status_code == 204
    t.stop()
    print(f"\nfuzz: {stats['requests']} requests in {stats['seconds']:.1f} s, "
          f"statuses {dict(sorted(stats['statuses'].items()))}")


def _operations():
    schema = from_dict(yaml.safe_load((conf.SPECS / "openapi.yaml").read_text()))
    ops = []
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) in SERVED:
            ops.append(op)
    return ops


OPERATIONS = _operations()


def test_fuzzing_covers_every_served_operation():
    assert {(op.method.upper(), op.path) for op in OPERATIONS} == SERVED


def _seed(case, seeds: dict, use_real: bool) -> None:
    """Swap generated identifiers for real ones so requests reach the exchange."""
    if not use_real:
        return
    for where in (case.path_parameters, case.query):
        for name in list(where or {}):
            if seeds.get(name):
                where[name] = seeds[name][hash(str(where[name])) % len(seeds[name])]
    body = case.body
    items = body.get("orders") if isinstance(body, dict) else None
    for item in ([body] if isinstance(body, dict) else []) + (
            items if isinstance(items, list) else []):
        if isinstance(item, dict):
            for name in ("ticker", "order_id", "market_ticker"):
                if name in item and seeds.get(name):
                    item[name] = seeds[name][0]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=lambda m: m.value)
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method.upper()} {op.path}")
def test_fuzz(target, op, mode):
    _sim, session, base, seeds, stats = target

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode), real=st.booleans())
    def run(case, real):
        _seed(case, seeds, real)
        t0 = time.monotonic()
        response = case.call(base_url=base, session=session, timeout=10)
        elapsed = time.monotonic() - t0
        stats["requests"] += 1
        stats["seconds"] += elapsed
        status = response.status_code
        stats["statuses"][status] = stats["statuses"].get(status, 0) + 1
        assert elapsed < MAX_SECONDS, f"{op.label}: {elapsed:.2f} s"
        case.validate_response(response, checks=[not_a_server_error])
        if status == 410:
            return
        if mode is GenerationMode.POSITIVE and status < 400:
            case.validate_response(response, checks=[response_schema_conformance])
        body = response.json() if response.content else None
        path = urlsplit(response.request.url).path[len(PREFIX):]
        conf.check_response(op.method.upper(), path, status, body)

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
        assert mode is GenerationMode.NEGATIVE


# --- explicit examples: each once answered a 5xx, stalled the loop or broke the spec ------

def _body(seeds: dict, **extra) -> dict:
    return fx.order_body(seeds["ticker"][0], count=1, price=3, **extra)


# (label, method, path, query, body builder, expected status)
EXPLICIT = [
    ("expiration past year 9999", "POST", fx.ORDERS, None,
     lambda s: _body(s, expiration_time=10**12), 400),
    ("expiration at 2**63", "POST", fx.ORDERS, None, lambda s: _body(s, expiration_time=2**63),
     400),
    ("unknown market on create", "POST", fx.ORDERS, None,
     lambda s: fx.order_body("NO-SUCH-MARKET", count=1, price=3), 400),
    ("cancel in another subaccount", "DELETE", fx.ORDERS + "/{order_id}", {"subaccount": "3"},
     None, 404),
    ("cancel on another shard", "DELETE", fx.ORDERS + "/{order_id}", {"exchange_index": "9"},
     None, 404),
    ("cancel-all in another subaccount", "DELETE", fx.ORDERS, {"subaccount": "2"}, None, 204),
    ("depth above 100", "GET", "/markets/{ticker}/orderbook", {"depth": "101"}, None, 200),
    ("negative depth", "GET", "/markets/{ticker}/orderbook", {"depth": "-1"}, None, 200),
    ("settled positions", "GET", "/portfolio/positions", {"settlement_status": "settled"},
     None, 200),
    ("all positions", "GET", "/portfolio/positions", {"settlement_status": "all"}, None, 200),
    ("unknown settlement status", "GET", "/portfolio/positions",
     {"settlement_status": "closed"}, None, 400),
    ("fills for 100 tickers", "GET", "/portfolio/fills",
     {"ticker": ",".join(f"T-{i}" for i in range(100))}, None, 200),
    ("fills for 101 tickers", "GET", "/portfolio/fills",
     {"ticker": ",".join(f"T-{i}" for i in range(101))}, None, 400),
    ("historical orders", "GET", "/historical/orders", {"limit": "5"}, None, 200),
    ("historical cutoff", "GET", "/historical/cutoff", None, None, 200),
]


@pytest.mark.parametrize("case", EXPLICIT, ids=lambda c: c[0])
def test_explicit_example(target, case):
    _sim, session, base, seeds, stats = target
    _label, method, tmpl, query, body, expected = case
    path = tmpl.format(ticker=seeds["ticker"][1], order_id=seeds["order_id"][-1])
    r = session.request(method, base + path, params=query,
                        json=body(seeds) if body else None, timeout=10)
    stats["requests"] += 1
    assert r.status_code == expected, r.text
    conf.check_response(method, path, r.status_code, r.json() if r.content else None)


def test_explicit_transport_examples(target):
    """A chunked body over 1 MiB, a hostile Host header, an Ed25519 key, a lost refusal."""
    sim, session, base, seeds, stats = target
    r = session.post(base + fx.ORDERS, data=iter([b"x" * 65_536] * 20))  # chunked
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    r = requests.get(sim.handle.base + "/healthz/", headers={"host": "evil.example"},
                     allow_redirects=False, timeout=10)
    assert "evil.example" not in r.headers.get("location", "") and r.status_code == 404
    key = ed25519.Ed25519PrivateKey.generate()
    register_public_key(sim.handle.sim.keys.dir, "fuzz-ed25519", key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    path = PREFIX + "/portfolio/balance"
    ts = str(int(time.time() * 1000))
    sig = base64.b64encode(key.sign(f"{ts}GET{path}".encode())).decode()
    r = requests.get(sim.handle.base + path, timeout=10, headers={
        "KALSHI-ACCESS-KEY": "fuzz-ed25519", "KALSHI-ACCESS-TIMESTAMP": ts,
        "KALSHI-ACCESS-SIGNATURE": sig})
    assert r.status_code == 200, r.text
    dup = _body(seeds, client_order_id="fuzz-dup")
    assert session.post(base + fx.ORDERS, json=dup).status_code == 201
    r = requests.post(sim.handle.base + "/_sim/lose_response", timeout=10, json={
        "status": 502, "count": 1, "path_prefix": PREFIX + fx.ORDERS})
    assert r.status_code == 200
    assert session.post(base + fx.ORDERS, json=dup).status_code == 502  # the 409, lost
    assert session.post(base + fx.ORDERS, json=dup).status_code == 409
    stats["requests"] += 7


def test_explicit_websocket_example(target):
    """A 381 KB subscribe naming one channel 20,000 times: refused at once (code 11)."""
    sim, _session, _base, seeds, _stats = target
    headers = fx.signer().headers("GET", "/trade-api/ws/v2")
    with ws_connect(sim.handle.ws_url, additional_headers=headers, max_size=2**24) as ws:
        ws.send(json.dumps({"id": 1, "cmd": "subscribe", "params": {
            "channels": ["orderbook_delta"] * 20_000, "market_tickers": seeds["ticker"]}}))
        reply = json.loads(ws.recv(timeout=10))
        assert (reply["type"], reply["msg"]["code"]) == ("error", 11)
        assert isinstance(reply["sending_ts_ms"], int)
    assert requests.get(sim.handle.base + "/healthz", timeout=10).status_code == 200
