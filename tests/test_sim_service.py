"""`rec run exchange-sim` as systemd runs it: READY once the port is bound, a live market
that a client with the `rec sim gen-key` credentials can trade, clean stop on SIGTERM."""

from __future__ import annotations

import time

import httpx
from websockets.sync.client import connect

from app.kalshi.signing import Signer, load_private_key


def test_exchange_sim_service_serves_a_moving_market(rec_home, start_service):
    keys = rec_home.root / "state" / "sim-keys"
    # no weekly pause: the test must not depend on the wall clock being outside it
    rec_home.env.update(REC_SIM_KEYS_DIR=str(keys), REC_SIM_SPEED="60",
                        REC_SIM_MAINTENANCE_WINDOW="")
    out = rec_home.rec("sim", "gen-key")
    assert out.returncode == 0, out.stderr
    signer = Signer((rec_home.credentials / "kalshi_key_id").read_text().strip(),
                    load_private_key((rec_home.credentials / "kalshi_private_key").read_bytes()))
    svc = start_service(rec_home, "exchange-sim")
    svc.notify.wait_for("READY", "1", timeout=30)
    base = f"http://127.0.0.1:{rec_home.env['REC_EXCHANGE_SIM_PORT']}"
    assert httpx.get(base + "/healthz").status_code == 200
    path = "/trade-api/v2/portfolio/balance"
    r = httpx.get(base + path, headers=signer.headers("GET", path))
    assert r.status_code == 200 and r.json()["balance"] == 1_000_000
    markets = httpx.get(base + "/trade-api/v2/markets", params={"status": "open"}).json()
    assert len(markets["markets"]) == 32  # BTC above + ranges, ETH above
    t = markets["markets"][5]["ticker"]
    ws_url = base.replace("http", "ws") + "/trade-api/ws/v2"
    with connect(ws_url, additional_headers=signer.headers("GET", "/trade-api/ws/v2")) as ws:
        ws.send('{"id": 1, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"], '
                f'"market_ticker": "{t}"}}}}')
        assert '"subscribed"' in ws.recv(timeout=5)
        assert '"orderbook_snapshot"' in ws.recv(timeout=5)
        # at 60x the world moves: deltas arrive without anyone trading
        assert '"orderbook_delta"' in ws.recv(timeout=20)
    t0 = httpx.get(base + "/healthz").json()["sim_time_ms"]
    deadline = time.monotonic() + 20
    while httpx.get(base + "/healthz").json()["sim_time_ms"] - t0 < 10_000:  # 60x
        assert time.monotonic() < deadline, "the simulated clock does not move"
        time.sleep(0.05)
    assert "faults off" in svc.output
    # its log lines carry the registry's name (the logger is named when the service is made)
    assert "rec-exchange-sim: simulator: seed" in svc.output
    assert svc.terminate() == 0
