"""Known-answer test of Kalshi request signing, checked with ``cryptography`` directly.

The key below is a throwaway 2048-bit RSA key made for this test only (it signs
nothing anywhere else). RSA-PSS signatures carry a random salt, so the known
answer is the signed message and a signature that verifies under exactly
Kalshi's parameters - PSS, MGF1(SHA-256), SHA-256, salt length 32 bytes (the
digest length) - using cryptography's own verifier, not rec's.

Ed25519 keys (spec v3.31): the RFC 8032 test key signs the same message, checked the same
way, and a generated one is verified by the simulator end to end.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding

from app.kalshi import signing
from app.kalshi.rest import KalshiRest
from app.kalshi.ws import KalshiWS
from app.sim.cli import register_public_key
from tests import test_sim_fixtures as fx

sim = fx.sim

TEST_ONLY_PEM = b"""\
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDGaX0mAMbnw+Vv
uTbauhRHlsl8mTvdnIMgvbxQ6CgzgL8eElDYHTyLxhUh2u0VpSL3sdY/rQMPDg87
12ruNPXS+GtOvAvrAPVSLU6BSEoEwMbxH/7dCUPOjlpyxMMs5siGQ8RjvslTXuU9
XEqC1dqtb5EatNST4zP6lBkWL9tFEBp8x3Go7QAXK/mP8I6GgrFZVXhWagXfKEP/
m/iqs33JUBWEXTA1rfinwoEu8v3wvJvoGvVjsGBDhs5n6N1/8n4Q2OQBH/IJ04tC
TvRVyLgdgjw1r3VD16TybIFbV2R/tmi+j/6XSa8sk9+75rX0beXQBCIjxiabo+cL
NlBxxcxLAgMBAAECggEAD4kEI7nQP4z6GPfykJVQFmIUrDnY3+6fFPnMlehaxXWU
muEqQITbHPXJT8yzEllkvIPJiu2cA+cnUDMuWMpl+QfUakzINIIigAJ/vbJ2tGde
H4eDm03CmzJQNXsS7ezmautBcRUa8SxiXJ4uUCie2URkCY6t5yQIcA7kGMJuGiEX
36W2+YYZUhO+pjpjuMW1qax79b4ASZMmdIDK1syu8fU7K9swihUr9eUMlJt5NyX/
EgqzSUdYqtPpH7DxqnBXegue1d91Tn7IgEpFvCqHBDkgOBHiH7BulPZXNzXoaW3n
Dtop1yrEYofJQbyfRZLiIWJLdutqg4RAM2bDvK6uAQKBgQDyGHzZ2rtdAekr5sax
oFoTZFnptw98B/SdTBMoxMDZGEvsIO7yX2byq2niC1ZVUaQeNvN9WDIqXiLbNdrK
Alg76/5+ZE3U+UKfUTMeZ4L7hUxeP2nrfsnaNyGNn1Eyg47wnGuiKaddCf9ANwVX
baIIHjumI+bMkgVEZ3ur8V2vAQKBgQDRzrmYQKU3rGQkjwURPAQTnaZVzsKTR+OT
9dq4/Vl/QLUfBvBDJD+OzsmBrAFsVaiZY3BM5FvHpx7ENcX4BcyH2XI3AG8swxgX
Qv9q7VTVfdob9tNF3MDZhNuccPcT6kIgJDx+IG+BomrYxoKhN9/TizAUzvy+nfOA
H7HdfgqHSwKBgAcVzGGb0yvvqGFOibYdGUXEBBWg8+UPXotT9KOWzoYL/fzVIekZ
/atQdPLWnho1H3Z66Tlb4Wv4AVElDFgpJWfrijEswlJfUSHUgIh9QwoVZpzDglgQ
B9xJDMRWS0wNKZvFGClQysMgTcYVViSu4rUWHWzJVDHcfCb6WFY55CIBAoGAYq6S
GuulCjeabpuabY3F+Rf4iXmTiUSR5SEJPGNlefYMesh/r4TYJCpdGxG1JahwgZ0E
0BXEmXaggPct40eO+QKstvQMVoh4x1Aq5Lc2ZKgqM2b33m9Dgcv8o2t6uzI+4fFJ
RqWo7Ndg3A8amAu4yj44YkEtHdcbFdNSjHRhLVsCgYEApHt1oLA/uBDooVDE8p8F
WHVycvBHAGy6Lq1aWo2JZQQLveAe1vi8YfQ3zFXR7JKpggqqiwiBvmTWzTPWBfY3
u7AuJtCSgna2oWJg/wTi40ohUIVnJe/oBvXE7c0apIrtz68VgNXHonM9VXsCVgx3
POWXma6mTJZI0OuZk/xp85A=
-----END PRIVATE KEY-----

"""

TIMESTAMP_MS = 1764144000123  # 2025-11-26T08:00:00.123Z
METHOD = "post"
URL = "https://external-api.kalshi.com/trade-api/v2/portfolio/events/orders?subaccount=0&x=1"
EXPECTED_MESSAGE = b"1764144000123POST/trade-api/v2/portfolio/events/orders"


def _public_key():
    key = serialization.load_pem_private_key(TEST_ONLY_PEM, password=None)
    return key.public_key()


def _verify(signature_b64: str, message: bytes, salt_length: int) -> None:
    _public_key().verify(
        base64.b64decode(signature_b64, validate=True),
        message,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt_length),
        hashes.SHA256(),
    )


def test_the_signed_message_is_timestamp_method_path_without_query():
    assert signing.message(TIMESTAMP_MS, METHOD, URL) == EXPECTED_MESSAGE
    assert signing.message(str(TIMESTAMP_MS), "GET", "/trade-api/ws/v2") == (
        b"1764144000123GET/trade-api/ws/v2"
    )


def test_signature_verifies_with_pss_mgf1_sha256_and_digest_length_salt():
    signer = signing.Signer("kat-key", signing.load_private_key(TEST_ONLY_PEM))
    headers = signer.headers(METHOD, URL, now_ms=TIMESTAMP_MS)
    assert headers == {
        "KALSHI-ACCESS-KEY": "kat-key",
        "KALSHI-ACCESS-TIMESTAMP": "1764144000123",
        "KALSHI-ACCESS-SIGNATURE": headers["KALSHI-ACCESS-SIGNATURE"],
    }
    sig = headers["KALSHI-ACCESS-SIGNATURE"]
    assert len(base64.b64decode(sig)) == 256  # one 2048-bit RSA block
    _verify(sig, EXPECTED_MESSAGE, salt_length=32)  # SHA-256 digest length
    # the same signature is not valid under another salt length or another message
    with pytest.raises(InvalidSignature):
        _verify(sig, EXPECTED_MESSAGE, salt_length=20)
    with pytest.raises(InvalidSignature):
        _verify(sig, EXPECTED_MESSAGE + b"?subaccount=0", salt_length=32)
    with pytest.raises(InvalidSignature):
        _verify(sig, b"1764144000124POST/trade-api/v2/portfolio/events/orders", salt_length=32)


def test_signatures_are_salted_yet_each_verifies():
    key = signing.load_private_key(TEST_ONLY_PEM)
    a = signing.sign(key, TIMESTAMP_MS, METHOD, URL)
    b = signing.sign(key, TIMESTAMP_MS, METHOD, URL)
    assert a != b  # PSS draws a fresh salt
    for sig in (a, b):
        _verify(sig, EXPECTED_MESSAGE, salt_length=32)


# RFC 8032 section 7.1, TEST 1: a published test key (it signs nothing anywhere), as PKCS#8 PEM
RFC8032_SECRET = bytes.fromhex(
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex(
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")


def _ed25519_pem() -> bytes:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_an_ed25519_pem_signs_the_same_message_with_a_raw_ed25519_signature():
    """The key type comes from the PEM: an Ed25519 key signs timestamp + METHOD + path (no
    query), base64 of the raw 64-byte signature, verified with the public key alone."""
    signer = signing.Signer("ed-key", signing.load_private_key(_ed25519_pem()))
    headers = signer.headers(METHOD, URL, now_ms=TIMESTAMP_MS)
    assert headers["KALSHI-ACCESS-KEY"] == "ed-key"
    assert headers["KALSHI-ACCESS-TIMESTAMP"] == "1764144000123"
    raw = base64.b64decode(headers["KALSHI-ACCESS-SIGNATURE"], validate=True)
    assert len(raw) == 64
    public = ed25519.Ed25519PublicKey.from_public_bytes(RFC8032_PUBLIC)
    public.verify(raw, EXPECTED_MESSAGE)  # cryptography's verifier, not rec's
    with pytest.raises(InvalidSignature):
        public.verify(raw, EXPECTED_MESSAGE + b"?subaccount=0")
    # Ed25519 is deterministic: the same message gives the same signature
    assert signing.sign(signer.private_key, TIMESTAMP_MS, "POST", URL) == (
        headers["KALSHI-ACCESS-SIGNATURE"])


def test_verify_takes_both_key_types_from_their_public_pem():
    for key in (signing.load_private_key(_ed25519_pem()),
                signing.load_private_key(TEST_ONLY_PEM)):
        public = signing.load_public_key(signing.public_pem(key))
        sig = signing.sign(key, TIMESTAMP_MS, "GET", "/trade-api/v2/portfolio/balance")
        assert signing.verify(public, sig, TIMESTAMP_MS, "GET", "/trade-api/v2/portfolio/balance")
        assert not signing.verify(public, sig, TIMESTAMP_MS, "GET", "/trade-api/v2/markets")


def test_a_key_of_another_type_is_refused():
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(signing.KeyFormatError, match="neither an RSA nor an Ed25519"):
        signing.load_private_key(pem)


async def test_an_ed25519_key_signs_rest_calls_and_the_ws_handshake(sim, tmp_path):
    """An Ed25519 key (spec v3.31), registered like an RSA one: the simulator verifies the
    client's signatures on reads, an order write and the WebSocket handshake."""
    ed = signing.Signer("ed25519-key", signing.generate_ed25519_key())
    register_public_key(tmp_path / "keys", ed.key_id, signing.public_pem(ed.private_key))
    async with KalshiRest(sim.base + fx.PREFIX, ed, timeout=5) as c:
        assert (await c.get_balance()).balance >= 0
        ticker = sim.open_tickers()[0]
        ack = await c.create_order(ticker, "yes", "buy", 1, "0.01")
        await c.cancel_order(ack.order_id, ticker=ticker)
    async with KalshiWS(sim.ws_url, ed, compression=None) as ws:
        await ws.wait_connected(within=5)
        assert ws.stats.connects == 1
