"""Conformance of the simulator to the vendored Kalshi specs (tests/specs/kalshi).

- every path and method the simulator serves under /trade-api/v2 is in openapi.yaml;
- every response it gives in a full trading scenario validates against the operation's
  response schema (OpenAPI 3.0 `nullable` translated to JSON Schema, $refs resolved), and
  names no field the schema does not declare;
- every WebSocket message it sends validates against asyncapi.yaml's payload schema for its
  type. SOURCE.md's known defect is patched: market_ticker may contain dots.
"""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from app.sim import rest
from app.sim.rest import PREFIX, ROUTES
from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import ORDERS, drain, order_body, signer

sim = fx.sim
SPECS = Path(__file__).resolve().parent / "specs" / "kalshi"
# the one extra field the simulator sends on purpose: production Kalshi wraps the error
# fields in "error"; the simulator sends both shapes
ALLOWED_EXTRA = {"error"}


def _nullable(node):
    if isinstance(node, list):
        return [_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable(v) for k, v in node.items()}
    if node.pop("nullable", False):
        if "type" in node and "$ref" not in node and "allOf" not in node:
            t = node["type"]
            node["type"] = [*t, "null"] if isinstance(t, list) else [t, "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        else:
            return {"anyOf": [node, {"type": "null"}]}
    return node


@cache
def openapi() -> dict:
    return _nullable(yaml.safe_load((SPECS / "openapi.yaml").read_text()))


@cache
def asyncapi() -> dict:
    doc = copy.deepcopy(yaml.safe_load((SPECS / "asyncapi.yaml").read_text()))
    doc["components"]["schemas"]["marketTicker"]["pattern"] = r"^[A-Z0-9.-]+$"
    return doc


@cache
def registry() -> Registry:
    return Registry().with_resources([
        ("urn:openapi", Resource.from_contents(openapi(), default_specification=DRAFT202012)),
        ("urn:asyncapi", Resource.from_contents(asyncapi(), default_specification=DRAFT202012)),
    ])


def _lookup(uri: str) -> dict:
    base, _, pointer = uri.partition("#")
    node = openapi() if base == "urn:openapi" else asyncapi()
    for part in pointer.strip("/").split("/"):
        node = node[part]
    return node


def _absolute(schema: dict, base: str) -> dict:
    """Rewrite local $refs ("#/...") against the document they came from."""
    text = json.dumps(schema).replace('"$ref": "#/', f'"$ref": "{base}#/')
    return json.loads(text)


def _validate(instance, schema: dict, base: str, where: str) -> None:
    schema = _absolute(schema, base)
    errors = list(Draft202012Validator(schema, registry=registry()).iter_errors(instance))
    assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"
    _strict(instance, schema, where, base)


def _branches(schema: dict, base: str) -> list[dict]:
    while "$ref" in schema:
        ref = schema["$ref"]
        schema = _absolute(_lookup(ref), ref.partition("#")[0] or base)
    out = [schema]
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []):
            out.extend(_branches(sub, base))
    return out


def _strict(instance, schema: dict, where: str, base: str) -> None:
    branches = _branches(schema, base)
    if isinstance(instance, dict):
        props: dict = {}
        for b in branches:
            props.update(b.get("properties", {}))
        if props:
            extra = set(instance) - set(props) - ALLOWED_EXTRA
            assert not extra, f"{where}: fields not in the spec: {sorted(extra)}"
        for k, v in instance.items():
            if k in props:
                _strict(v, props[k], f"{where}.{k}", base)
    elif isinstance(instance, list):
        for b in branches:
            if isinstance(b.get("items"), dict):
                for i, v in enumerate(instance):
                    _strict(v, b["items"], f"{where}[{i}]", base)


# Operations of openapi.yaml v3.31.0 the simulator deliberately does not serve (404).
UNSERVED = {
    "GetSeriesFeeChanges", "GetUserDataTimestamp",
    "BatchGetMarketCandlesticks", "GetMarketCandlesticksByEvent",
    "GetMultivariateEvents", "GetEventFeeChanges", "GetEventMetadata",
    "GetEventForecastPercentilesHistory", "IntraExchangeInstanceTransfer",
    "GetIntraExchangeInstanceTransfers", "GetIntraExchangeInstanceTransfer",
    "CreateSubaccount", "ApplySubaccountTransfer", "GetSubaccountBalances",
    "GetSubaccountTransfers", "UpdateSubaccountNetting", "GetSubaccountNetting",
    "GetDeposits", "GetWithdrawals", "GetPortfolioRestingOrderTotalValue",
    "GetCommunicationsID", "GetBlockTradeProposals", "ProposeBlockTrade",
    "AcceptBlockTradeProposal", "GetRFQs", "CreateRFQ", "GetRFQ", "DeleteRFQ", "GetRFQQuote",
    "DeleteRFQQuote", "AcceptRFQQuote", "ConfirmRFQQuote", "GetQuotes", "CreateQuote",
    "GetQuote", "DeleteQuote", "AcceptQuote", "ConfirmQuote", "GetApiKeys", "CreateApiKey",
    "GenerateApiKey", "DeleteApiKey", "UpgradeAccountApiUsageLevel",
    "GetAccountApiUsageLevelVolumeProgress", "GetTagsForSeriesCategories",
    "GetFiltersForSports", "GetLiveDataByMilestone", "GetLiveData", "GetLiveDatas",
    "GetGameStats", "GetEventLiveData", "GetWeatherIndex", "GetWeatherIndexCalibrations",
    "GetStructuredTargets", "GetStructuredTarget", "GetMilestone", "GetMilestones",
    "GetMultivariateEventCollection", "CreateMarketInMultivariateEventCollection",
    "GetMultivariateEventCollections", "GetIncentivePrograms", "GetFCMFills", "GetFCMOrders",
    "ListFCMSubtraders", "CreateFCMSubtrader", "GetFCMEventContractDailyCap",
    "UpdateFCMEventContractDailyCap", "DeleteFCMEventContractDailyCap",
    "GetFCMSubtraderBlockedCategories", "UpdateFCMSubtraderBlockedCategories",
    "GetTargetBalanceAllocation", "SetTargetBalanceAllocation", "GetFCMPositions",
    "GetMarketCandlesticksHistorical", "GetHistoricalPositions",
    "GetTradesHistorical",
    "GetHistoricalMarkets", "GetHistoricalMarket",
}
# Statuses the simulator answers that the spec does not list for the operation, each on
# purpose. Any other undocumented status fails the conformance test.
DOCUMENTED_EXTRA = {
    # the per-key token bucket answers 429 on every operation, as production does
    ("*", 429): "rate limit (GetAccountApiLimits: 'otherwise the request is rejected with 429')",
    # a depth that is not an integer at all: no status the operation lists fits (200 would
    # pretend it was read, 404 names a missing market); out-of-range depths follow the spec
    # ("0 or negative means all levels"; above 100 is read as 100)
    ("GET /markets/{ticker}/orderbook", 400): "depth is not an integer",
    # unknown series: production answers 404; GetSeries lists only 400 and 500
    ("GET /series/{series_ticker}", 404): "unknown series",
    # 413 for bodies above 1 MiB on every operation that takes a body
    ("*", 413): "request body above 1 MiB",
}
# WebSocket channels: the simulator publishes on these ...
WS_PUBLISHED = {"orderbook_delta", "ticker", "trade", "fill", "user_orders",
                "market_positions", "market_lifecycle_v2", "cfbenchmarks_value",
                "cfbenchmarks_value_5hz", "order_group_updates"}
# ... and accepts subscriptions to these, which stay silent (no such data in the sim)
WS_SILENT = {"multivariate_market_lifecycle", "communications", "pyth_value"}
# v1 order writes: removed from the spec in v3.31.0; production answers them 410
GONE = {(m, p) for m, p in rest.GONE}


def _filled(tmpl: str) -> str:
    """A path template with a dummy id in each parameter."""
    return re.sub(r"\{[^}]+\}", "some-id", tmpl)


def served_operations() -> set[tuple[str, str]]:
    return {(m, p) for m, p, *_ in ROUTES}


def spec_operations() -> dict[tuple[str, str], str]:
    out = {}
    for path, ops in openapi()["paths"].items():
        for method, op in ops.items():
            if method in ("get", "post", "put", "delete", "patch"):
                out[(method.upper(), path)] = op["operationId"]
    return out


def test_every_served_route_is_in_the_spec_and_the_rest_is_listed_unserved(tmp_path):
    from starlette.routing import Route

    from app.sim.app import create_app

    app = create_app(fx.make_config(tmp_path))
    spec = spec_operations()
    served = set()
    for r in app.routes:
        if isinstance(r, Route) and r.path.startswith(PREFIX) and "{rest:path}" not in r.path:
            for m in r.methods - {"HEAD"}:
                served.add((m, r.path[len(PREFIX):]))
    assert served == served_operations() | GONE
    for op in served_operations():
        assert op in spec, f"served but not in the spec: {op}"
        assert spec[op] not in UNSERVED, f"{spec[op]} is served but listed unserved"
    for op in GONE:
        assert op not in spec, f"{op} is in the spec again: serve it"
    listed = set(UNSERVED)
    missing = {spec[op] for op in spec if op not in served_operations()} - listed
    assert not missing, f"neither served nor listed unserved: {sorted(missing)}"
    stale = listed - set(spec.values())
    assert not stale, f"listed unserved but not in the spec: {sorted(stale)}"
    other = [r.path for r in app.routes if not r.path.startswith(PREFIX)]
    assert set(other) == {"/healthz", "/trade-api/ws/v2", "/_sim/{action}"}


def _template(method: str, path: str) -> str:
    gone = sorted(GONE, key=lambda op: "{" in op[1])  # literal paths first
    for m, tmpl, *_ in [*ROUTES, *gone]:
        rx = "^" + re.sub(r"\{[^}]+\}", "[^/]+", tmpl) + "$"
        if m == method and re.match(rx, path):  # ROUTES lists literal paths first
            return tmpl
    raise AssertionError(f"no route for {method} {path}")


def _response_schema(op: dict, status: int) -> tuple[bool, dict | None]:
    """(listed, schema) of one response of an operation."""
    resp = op["responses"].get(str(status))
    if resp is None:
        return False, None
    if "$ref" in resp:
        resp = _lookup("urn:openapi" + resp["$ref"])
    content = resp.get("content", {}).get("application/json")
    return True, content["schema"] if content else None


def check_response(method: str, path: str, status: int, body: object) -> None:
    """One response against the spec: status listed (or documented), body valid."""
    tmpl = _template(method, path)
    if (method, tmpl) in GONE:
        assert status == 410, f"{method} {tmpl}: {status}"
        _validate(body, {"$ref": "#/components/schemas/ErrorResponse"}, "urn:openapi", tmpl)
        return
    op = openapi()["paths"][tmpl][method.lower()]
    listed, schema = _response_schema(op, status)
    if not listed:
        key = f"{method} {tmpl}"
        assert ("*", status) in DOCUMENTED_EXTRA or (key, status) in DOCUMENTED_EXTRA, \
            f"{key}: {status} is neither in the spec nor documented"
    if status == 204:
        assert body is None, f"{method} {tmpl}: 204 with a body"
        return
    if schema is None:
        assert status >= 400, f"{method} {tmpl}: {status} has no schema"
        schema = {"$ref": "#/components/schemas/ErrorResponse"}
    _validate(body, schema, "urn:openapi", f"{method} {tmpl} {status}")


async def test_rest_responses_validate_against_openapi(sim):
    seen: list[tuple[str, str, int, object]] = []

    async def record(resp: httpx.Response) -> None:
        await resp.aread()
        path = resp.request.url.path
        if path.startswith(PREFIX):
            body = resp.json() if resp.content else None
            seen.append((resp.request.method, path[len(PREFIX):], resp.status_code, body))

    a, b = sim.client(), sim.client(signer("other-key"))
    anon = sim.client(auth=False)
    for c in (a, b, anon):
        c.event_hooks["response"].append(record)
    t = sim.open_tickers()[5]
    await sim.control("advance", seconds=120)
    for path in ("/exchange/status", "/exchange/schedule", "/account/limits",
                 "/account/endpoint_costs", "/series", "/series/KXBTCD",
                 "/events?with_nested_markets=true&limit=2", "/markets?limit=3",
                 f"/markets/{t}", f"/markets/{t}/orderbook?depth=3", "/markets/trades?limit=5",
                 "/historical/cutoff", "/historical/orders", "/historical/fills"):
        assert (await a.get(path)).status_code == 200, path
    ev = (await a.get("/events")).json()["events"][0]["event_ticker"]
    now_s = sim.sim.world.now_ms // 1000
    for q in (f"start_ts={now_s - 3600}&end_ts={now_s}&period_interval=1",
              f"start_ts={now_s - 3600}&end_ts={now_s + 3600}&period_interval=60",
              "start_ts=1&end_ts=2&period_interval=5"):
        await a.get(f"/series/KXBTCD/markets/{t}/candlesticks?{q}")
    await a.get(f"/series/KXETHD/markets/{t}/candlesticks?start_ts=1&end_ts=2&period_interval=1")
    await a.get(f"/events/{ev}")
    # trading: rest, fill, amend, decrease, cancel, batches, cancel-all
    book = (await a.get(f"/markets/{t}/orderbook")).json()["orderbook_fp"]
    others = ",".join(sim.open_tickers()[:3])
    r = await a.get("/markets/orderbooks", params=[("tickers", t), ("tickers", others)])
    assert next(b["ticker"] for b in r.json()["orderbooks"]) == t
    await a.get("/markets/orderbooks")  # no tickers: 400
    best_no = int(Decimal(book["no_dollars"][-1][0]) * 100)
    r = await a.post(ORDERS, json=order_body(t, count=5, price=100 - best_no,
                                             client_order_id="conf-1"))
    assert r.status_code == 201
    r = await a.post(ORDERS, json=order_body(t, count=10, price=5, client_order_id="conf-2"))
    oid = r.json()["order_id"]
    await a.get(f"/portfolio/orders/{oid}")
    await a.get(f"/portfolio/orders/{oid}/queue_position")
    await a.get("/portfolio/orders/queue_positions", params={"market_tickers": t})
    await a.post(f"{ORDERS}/{oid}/amend", json={
        "ticker": t, "side": "bid", "price": "0.06", "count": "12"})
    await a.post(f"{ORDERS}/{oid}/amend", json={  # crosses: fills
        "ticker": t, "side": "bid", "price": f"{(100 - best_no) / 100:.2f}", "count": "12"})
    await a.post(f"{ORDERS}/{oid}/decrease", json={"reduce_by": "2"})
    await a.delete(f"{ORDERS}/{oid}")
    r = await a.post(f"{ORDERS}/batched", json={"orders": [
        order_body(t, count=1, price=3), order_body(t, count=1, price=150)]})
    bid = r.json()["orders"][0]["order_id"]
    await a.request("DELETE", f"{ORDERS}/batched",
                    json={"orders": [{"order_id": bid}, {"order_id": "missing"}]})
    await a.post(ORDERS, json=order_body(t, count=1, price=4))
    await a.delete(ORDERS)
    # order groups
    r = await a.post("/portfolio/order_groups/create", json={"contracts_limit": 5})
    gid = r.json()["order_group_id"]
    await a.post(ORDERS, json=order_body(t, count=1, price=4, order_group_id=gid))
    await a.get("/portfolio/order_groups")
    await a.get(f"/portfolio/order_groups/{gid}")
    await a.put(f"/portfolio/order_groups/{gid}/limit", json={"contracts_limit_fp": "7.00"})
    await a.put(f"/portfolio/order_groups/{gid}/trigger", json={})
    await a.put(f"/portfolio/order_groups/{gid}/reset", json={})
    await a.delete(f"/portfolio/order_groups/{gid}")
    await a.get(f"/portfolio/order_groups/{gid}")  # 404
    for path in ("/portfolio/orders", "/portfolio/fills", "/portfolio/positions",
                 "/portfolio/balance", "/portfolio/settlements"):
        assert (await a.get(path)).status_code == 200
    await sim.control("advance", seconds=3700)
    await a.get("/portfolio/settlements")
    await a.get("/portfolio/positions")
    # errors
    await a.post(ORDERS, json=order_body(t, count=1, price=5))  # market closed
    await a.post(ORDERS, json={"ticker": t})
    await a.get("/markets/NOPE")
    await a.get("/portfolio/orders/NOPE")
    await a.delete(f"{ORDERS}/NOPE")
    await anon.get("/portfolio/balance")
    await a.post(ORDERS, json=order_body(sim.open_tickers()[0], count=1, price=5,
                                         client_order_id="conf-2"))
    for method, path in sorted(GONE):  # legacy writes: 410
        await a.request(method, _filled(path), json={"ticker": t})
    await sim.control("http_error", status=429, count=1)
    await a.get("/portfolio/balance")

    covered = {(m, _template(m, p)) for m, p, *_ in seen}
    assert covered == served_operations() | GONE, covered ^ (served_operations() | GONE)
    statuses = {s for *_, s, _ in seen}
    assert {200, 201, 204, 400, 401, 404, 409, 410, 429} <= statuses
    for method, path, status, body in seen:
        check_response(method, path, status, body)


def test_documented_extra_statuses_are_really_extra():
    spec = spec_operations()
    by_label = {f"{m} {p}": (m, p) for m, p in spec}
    for (label, status), why in DOCUMENTED_EXTRA.items():
        assert why
        if label == "*":
            continue
        method, path = by_label[label]
        assert (method, path) in served_operations(), label
        listed = openapi()["paths"][path][method.lower()]["responses"]
        assert str(status) not in listed, f"{label} {status} is in the spec: drop the entry"


async def test_statuses_follow_the_spec_where_it_lists_no_400(sim):
    """Issue 24 low 11: each of these once answered a status the operation does not list."""
    a = sim.client()
    t = sim.open_tickers()[0]
    seen = []

    async def call(method: str, path: str, **kw) -> httpx.Response:
        r = await a.request(method, path, **kw)
        seen.append((method, path, r.status_code, r.json() if r.content else None))
        return r

    # CreateOrderV2 lists 400 (not 404) for an unknown market
    r = await call("POST", ORDERS, json=order_body("NO-SUCH-MARKET", count=1, price=5))
    assert (r.status_code, r.json()["code"]) == (400, "not_found")
    # depth: "0 or negative means all levels"; above 100 reads as 100; not a number: 400
    full = (await call("GET", f"/markets/{t}/orderbook")).json()
    assert (await call("GET", f"/markets/{t}/orderbook", params={"depth": -3})).json() == full
    assert (await call("GET", f"/markets/{t}/orderbook", params={"depth": 101})).json() == full
    assert (await call("GET", f"/markets/{t}/orderbook",
                       params={"depth": "x"})).status_code == 400
    # subaccount / exchange_index on one resource: it is not there (404)
    o = await fx.place(a, t, count=1, price=3)
    gid = (await a.post("/portfolio/order_groups/create",
                        json={"contracts_limit": 5})).json()["order_group_id"]
    for params in ({"subaccount": "3"}, {"subaccount": "null"}, {"exchange_index": "7"}):
        r = await call("DELETE", f"{ORDERS}/{o['order_id']}", params=params)
        assert r.status_code == 404, (params, r.text)
        for method, suffix in (("GET", ""), ("PUT", "/reset"), ("PUT", "/trigger"),
                               ("DELETE", "")):
            r = await call(method, f"/portfolio/order_groups/{gid}{suffix}", params=params)
            assert r.status_code == 404, (method, suffix, params, r.text)
    # CancelAllOrders lists no 400: another subaccount has nothing to cancel
    assert (await call("DELETE", ORDERS, params={"subaccount": "2"})).status_code == 204
    got = (await a.get(f"/portfolio/orders/{o['order_id']}")).json()["order"]
    assert got["status"] == "resting"  # none of the refused calls touched it
    assert (await call("DELETE", f"{ORDERS}/{o['order_id']}")).status_code == 200
    for method, path, status, body in seen:
        check_response(method, urlsplit(path).path, status, body)


def test_every_ws_channel_is_published_or_listed_silent():
    from app.sim.ws import CHANNELS

    enum = set(asyncapi()["components"]["schemas"]["subscribeCommandPayload"]["properties"]
               ["params"]["properties"]["channels"]["items"]["enum"])
    assert set(CHANNELS) == enum == WS_PUBLISHED | WS_SILENT
    assert not WS_PUBLISHED & WS_SILENT


def _ws_schemas() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for msg in asyncapi()["components"]["messages"].values():
        ref = msg.get("payload", {}).get("$ref")
        if not ref:
            continue
        payload = _lookup("urn:asyncapi" + ref)
        kind = payload.get("properties", {}).get("type", {}).get("const")
        if kind:
            out.setdefault(kind, []).append({"$ref": ref})
    return out


async def test_every_ws_message_validates_against_asyncapi(sim):
    a, b = sim.client(), sim.client(signer("other-key"))
    t1, t2 = sim.open_tickers()[4:6]
    ws = await sim.ws()
    cmds = [
        {"id": 1, "cmd": "subscribe", "params": {
            "channels": ["orderbook_delta", "ticker", "trade"], "market_tickers": [t1]}},
        {"id": 2, "cmd": "subscribe", "params": {
            "channels": ["fill", "user_orders", "market_positions", "market_lifecycle_v2",
                         "order_group_updates"]}},
        {"id": 3, "cmd": "update_subscription", "params": {
            "sids": [1], "market_tickers": [t2], "action": "add_markets"}},
        {"id": 4, "cmd": "update_subscription", "params": {
            "sid": 1, "market_ticker": t2, "action": "get_snapshot"}},
        {"id": 5, "cmd": "list_subscriptions"},
        {"id": 6, "cmd": "subscribe", "params": {"channels": ["nope"]}},
        {"id": 7, "cmd": "subscribe", "params": {"channels": ["ticker"],
                                                 "market_tickers": [t1],
                                                 "send_initial_snapshot": True}},
        {"id": 10, "cmd": "subscribe", "params": {"channels": ["cfbenchmarks_value"],
                                                  "index_ids": ["BRTI"]}},
        {"id": 11, "cmd": "subscribe", "params": {"channels": ["cfbenchmarks_value_5hz"]}},
    ]
    for c in cmds:
        await ws.send(json.dumps(c))
    msgs = await drain(ws)
    cf = {m["msg"]["channel"]: m["msg"]["sid"] for m in msgs if m["type"] == "subscribed"
          and m["msg"]["channel"].startswith("cfbenchmarks")}
    for i, params in enumerate(({"action": "indexlist"},
                                {"action": "subscribe_indices", "index_ids": ["ETHUSD_RTI"]},
                                {"action": "subscribe_indices"})):
        for sid in cf.values():
            await ws.send(json.dumps({"id": 20 + 2 * i + (sid == cf["cfbenchmarks_value"]),
                                      "cmd": "update_subscription",
                                      "params": {"sid": sid, **params}}))
    await sim.control("advance", seconds=2)
    msgs += await drain(ws)
    book = (await a.get(f"/markets/{t1}/orderbook")).json()["orderbook_fp"]
    best_no = int(Decimal(book["no_dollars"][-1][0]) * 100)
    await a.post(ORDERS, json=order_body(t1, count=3, price=100 - best_no,
                                         client_order_id="ws-c"))
    await a.post(ORDERS, json=order_body(t1, count=2, price=10))
    await b.post(ORDERS, json=order_body(t1, side="no", count=2, price=90))
    r = await a.post("/portfolio/order_groups/create", json={"contracts_limit": 3})
    gid = r.json()["order_group_id"]
    await a.put(f"/portfolio/order_groups/{gid}/limit", json={"contracts_limit": 4})
    await a.put(f"/portfolio/order_groups/{gid}/trigger", json={})
    await a.put(f"/portfolio/order_groups/{gid}/reset", json={})
    await a.delete(f"/portfolio/order_groups/{gid}")
    await sim.control("advance", seconds=3700)
    msgs += await drain(ws)
    await ws.send(json.dumps({"id": 9, "cmd": "unsubscribe", "params": {"sids": [1]}}))
    msgs += await drain(ws)
    await ws.close()

    # Kalshi since v3.32 (after the vendored spec): the send time on every message
    assert all(isinstance(m.pop("sending_ts_ms"), int) for m in msgs)
    schemas = _ws_schemas()
    kinds = {m["type"] for m in msgs}
    assert kinds >= {"subscribed", "ok", "error", "unsubscribed", "orderbook_snapshot",
                     "orderbook_delta", "ticker", "trade", "fill", "user_order",
                     "market_position", "market_lifecycle_v2", "event_lifecycle",
                     "cfbenchmarks_value", "cfbenchmarks_value_5hz",
                     "cfbenchmarks_value_indexlist", "cfbenchmarks_value_5hz_indexlist",
                     "order_group_updates"}, kinds
    assert any("last_60s_windowed_average_15min" in m["msg"] for m in msgs
               if m["type"] == "cfbenchmarks_value")  # the final minute before :00
    assert any(m["type"] == "error" and m["msg"]["code"] == 24 for m in msgs)
    for m in msgs:
        options = schemas[m["type"]]
        if m["type"] == "ok":
            want = "listSubscriptions" if isinstance(m["msg"], list) else "okResponse"
            options = [o for o in options if want in o["$ref"]]
        errors = []
        for o in options:
            try:
                _validate(m, o, "urn:asyncapi", f"ws {m['type']}")
                break
            except AssertionError as exc:
                errors.append(str(exc))
        else:
            raise AssertionError("; ".join(errors))
