"""Signature auth on the simulator: each way a request can fail gets 401 with Kalshi's
error body; public market data needs no signature; keys can be added while it runs."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time

import httpx
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from app.kalshi.signing import HEADER_TIMESTAMP, Signer, generate_private_key, public_pem
from tests import test_sim_fixtures as fx
from tests.test_sim_fixtures import PREFIX, signer

sim = fx.sim
REPO = fx.Path(__file__).resolve().parent.parent


def _assert_401(r: httpx.Response, detail: str) -> None:
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["code"] == "authentication_error" and body["message"]
    assert detail in body["details"]
    assert body["error"]["code"] == "authentication_error"  # the production wrapper too


async def test_signed_request_is_accepted_and_query_string_is_not_signed(sim):
    c = sim.client()
    assert (await c.get("/portfolio/balance")).status_code == 200
    r = await c.get("/portfolio/orders", params={"limit": 5, "status": "resting"})
    assert r.status_code == 200


async def test_public_market_data_needs_no_signature_but_private_data_does(sim):
    anon = sim.client(auth=False)
    assert (await anon.get("/exchange/status")).status_code == 200
    assert (await anon.get("/markets")).status_code == 200
    t = sim.open_tickers()[0]
    assert (await anon.get(f"/markets/{t}")).status_code == 200
    assert (await anon.get("/markets/trades")).status_code == 200
    _assert_401(await anon.get("/portfolio/balance"), "missing")
    _assert_401(await anon.get(f"/markets/{t}/orderbook"), "missing")  # secured in the spec


async def test_each_auth_failure_is_a_401(sim):
    raw = httpx.AsyncClient(base_url=sim.base, timeout=5)
    try:
        s = signer()
        path = PREFIX + "/portfolio/balance"
        # unknown key id
        stranger = Signer("nobody", s.private_key)
        _assert_401(await raw.get(path, headers=stranger.headers("GET", path)), "unknown")
        # registered key id, signed with a different private key
        impostor = Signer(s.key_id, generate_private_key())
        _assert_401(await raw.get(path, headers=impostor.headers("GET", path)), "signature")
        # signature for another path
        h = s.headers("GET", PREFIX + "/portfolio/positions")
        _assert_401(await raw.get(path, headers=h), "signature")
        # signature for another method
        h = s.headers("POST", PREFIX + "/portfolio/orders")
        _assert_401(await raw.get(PREFIX + "/portfolio/orders", headers=h), "signature")
        # a path signed without the /trade-api/v2 prefix
        _assert_401(await raw.get(path, headers=s.headers("GET", "/portfolio/balance")),
                    "signature")
        # stale and future timestamps
        old = int(time.time() * 1000) - 120_000
        _assert_401(await raw.get(path, headers=s.headers("GET", path, now_ms=old)), "window")
        new = int(time.time() * 1000) + 120_000
        _assert_401(await raw.get(path, headers=s.headers("GET", path, now_ms=new)), "window")
        # a timestamp changed after signing
        h = s.headers("GET", path)
        h[HEADER_TIMESTAMP] = str(int(h[HEADER_TIMESTAMP]) + 1)
        _assert_401(await raw.get(path, headers=h), "signature")
        # garbage signature; a bad signature on a public endpoint is refused too
        h = {**s.headers("GET", path), "KALSHI-ACCESS-SIGNATURE": "not base64!"}
        _assert_401(await raw.get(path, headers=h), "signature")
        _assert_401(await raw.get(PREFIX + "/markets", headers=h), "signature")
    finally:
        await raw.aclose()


async def test_websocket_handshake_is_signed_and_checked(sim):
    ws = await sim.ws()
    await ws.close()
    bad = Signer(signer().key_id, generate_private_key())
    with pytest.raises(websockets.InvalidStatus) as exc:
        await websockets.connect(sim.ws_url,
                                 additional_headers=bad.headers("GET", "/trade-api/ws/v2"))
    assert exc.value.response.status_code == 401
    assert b"authentication_error" in exc.value.response.body
    wrong_path = signer().headers("GET", "/trade-api/v2/portfolio/balance")
    with pytest.raises(websockets.InvalidStatus) as exc:
        await websockets.connect(sim.ws_url, additional_headers=wrong_path)
    assert exc.value.response.status_code == 401


async def _rec(*args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "app.cli", *args],
                                   cwd=REPO, capture_output=True, text=True, timeout=30)


async def test_key_added_with_the_cli_works_while_running_pkcs1_too(sim, tmp_path):
    key = generate_private_key()
    s = Signer("added-later", key)
    c = sim.client(s)
    _assert_401(await c.get("/portfolio/balance"), "unknown")
    pub = tmp_path / "pub.pem"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.PKCS1))
    out = await _rec("sim", "add-key", "--key-id", "added-later", "--public-key", str(pub),
                     "--keys-dir", str(sim.sim.keys.dir))
    assert out.returncode == 0, out.stderr
    assert "added" in out.stdout
    assert (await c.get("/portfolio/balance")).status_code == 200
    # registering the same key again is a no-op; a different key under that id is refused
    again = await _rec("sim", "add-key", "--key-id", "added-later", "--public-key", str(pub),
                     "--keys-dir", str(sim.sim.keys.dir))
    assert again.returncode == 0 and "unchanged" in again.stdout
    other = tmp_path / "other.pem"
    other.write_bytes(public_pem(generate_private_key()))
    clash = await _rec("sim", "add-key", "--key-id", "added-later", "--public-key", str(other),
                     "--keys-dir", str(sim.sim.keys.dir))
    assert clash.returncode == 1 and "different key" in clash.stderr


def test_gen_key_writes_credentials_once_and_registers_them(tmp_path):
    creds, keys = tmp_path / "creds", tmp_path / "keys"
    cmd = [sys.executable, "-m", "app.cli", "sim", "gen-key", "--credentials-dir", str(creds),
           "--keys-dir", str(keys)]
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert first.returncode == 0, first.stderr
    key_id = (creds / "kalshi_key_id").read_text().strip()
    pem = (creds / "kalshi_private_key").read_bytes()
    assert (creds / "kalshi_private_key").stat().st_mode & 0o077 == 0
    assert (keys / f"{key_id}.pem").exists()
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert second.returncode == 0 and "kept existing" in second.stdout
    assert (creds / "kalshi_private_key").read_bytes() == pem
    assert b"PRIVATE" not in (keys / f"{key_id}.pem").read_bytes()


def _ed25519_headers(key: ed25519.Ed25519PrivateKey, key_id: str, method: str,
                     path: str) -> dict[str, str]:
    """Kalshi's Ed25519 signing, written out here: base64 of the raw signature over
    timestamp + method + path (the client's signer is another module's concern)."""
    ts = str(int(time.time() * 1000))
    sig = base64.b64encode(key.sign(f"{ts}{method}{path}".encode())).decode()
    return {"KALSHI-ACCESS-KEY": key_id, "KALSHI-ACCESS-TIMESTAMP": ts,
            "KALSHI-ACCESS-SIGNATURE": sig}


async def test_an_ed25519_key_added_with_the_cli_signs_rest_and_websocket(sim, tmp_path):
    key = ed25519.Ed25519PrivateKey.generate()
    pub = tmp_path / "ed.pem"
    pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    out = await _rec("sim", "add-key", "--key-id", "ed-key", "--public-key", str(pub),
                     "--keys-dir", str(sim.sim.keys.dir))
    assert out.returncode == 0, out.stderr
    path = PREFIX + "/portfolio/balance"
    async with httpx.AsyncClient(base_url=sim.base, timeout=5) as raw:
        r = await raw.get(path, headers=_ed25519_headers(key, "ed-key", "GET", path))
        assert r.status_code == 200, r.text
        # signed for another path, or by another Ed25519 key: refused
        other = _ed25519_headers(key, "ed-key", "GET", PREFIX + "/portfolio/orders")
        _assert_401(await raw.get(path, headers=other), "invalid signature")
        stranger = _ed25519_headers(ed25519.Ed25519PrivateKey.generate(), "ed-key", "GET", path)
        _assert_401(await raw.get(path, headers=stranger), "invalid signature")
        garbage = {**_ed25519_headers(key, "ed-key", "GET", path),
                   "KALSHI-ACCESS-SIGNATURE": "not base64!"}
        _assert_401(await raw.get(path, headers=garbage), "invalid signature")
    ws = await websockets.connect(
        sim.ws_url, additional_headers=_ed25519_headers(key, "ed-key", "GET", "/trade-api/ws/v2"))
    await ws.send('{"id": 1, "cmd": "list_subscriptions"}')
    assert (await fx.recv_json(ws))["type"] == "ok"
    await ws.close()


async def test_add_key_refuses_a_key_of_another_type(tmp_path):
    pub = tmp_path / "ec.pem"
    pub.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    out = await _rec("sim", "add-key", "--key-id", "ec-key", "--public-key", str(pub),
                     "--keys-dir", str(tmp_path / "keys"))
    assert out.returncode == 1 and "neither an RSA nor an Ed25519 key" in out.stderr
