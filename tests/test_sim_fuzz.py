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
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

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
