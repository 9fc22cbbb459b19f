"""EAT (RFC 9711) JWTs: node-side make_eat, verifier-side decode_eat, one test per refusal."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from identity import SigningKey, verification_key_from_jwk
from identity.attestation import (
    AcceleratorClaims,
    EatVerificationError,
    NonceRegistry,
    NonceVerificationError,
    decode_eat,
    make_eat,
)
from tests.unit.identity.test_attest_support import AGENT_V1, RUNTIME, Clock

NODE, VERIFIER = "op1/node-a", "cntrust-verifier"
UEID = b"\x01" + b"\x42" * 16
GPU = AcceleratorClaims("GPU", "A100", "535.104.5", "96.00.5E.00.01")


@pytest.fixture(params=["EdDSA", "ES256"])
def key(request: pytest.FixtureRequest) -> SigningKey:
    return SigningKey.generate(request.param)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def nonces(clock: Clock) -> NonceRegistry:
    return NonceRegistry(clock)


def _token(key: SigningKey, nonce: bytes, clock: Clock, **kw: object) -> str:
    args: dict = {
        "node_id": NODE,
        "verifier_id": VERIFIER,
        "nonce": nonce,
        "ueid": UEID,
        "measurements": {"agent": AGENT_V1, "runtime/python": RUNTIME},
        "accelerators": [GPU],
        "now": clock.now,
    }
    args.update(kw)
    return make_eat(key, **args)


def _decode(
    token: str, key: SigningKey, nonce: bytes, nonces: NonceRegistry, clock: Clock, **kw: object
):  # type: ignore[no-untyped-def]
    args: dict = {
        "node_id": NODE,
        "node_key": key.public(),
        "ueid": UEID,
        "verifier_id": VERIFIER,
        "nonce": nonce,
        "nonces": nonces,
        "now": clock.now,
    }
    args.update(kw)
    return decode_eat(token, **args)


def _reason(*args: object, **kw: object) -> str:
    with pytest.raises((EatVerificationError, NonceVerificationError)) as err:
        _decode(*args, **kw)  # type: ignore[arg-type]
    return err.value.reason


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(key: SigningKey, claims: dict, alg: str | None = None) -> str:
    return jwt.encode(claims, key.private_key, algorithm=alg or key.algorithm)


def test_good_eat_decodes(key: SigningKey, nonces: NonceRegistry, clock: Clock) -> None:
    nonce = nonces.issue(NODE)
    claims = _decode(_token(key, nonce, clock), key, nonce, nonces, clock)
    assert claims.node_id == NODE and claims.ueid == UEID and claims.nonce == nonce
    assert claims.measurements == {"agent": AGENT_V1, "runtime/python": RUNTIME}
    assert claims.accelerators == (GPU,)
    assert claims.expires_at - claims.issued_at == 60


def test_alg_none_and_hs256_refused(key: SigningKey, nonces: NonceRegistry, clock: Clock) -> None:
    nonce = nonces.issue(NODE)
    good = _token(key, nonce, clock)
    payload = good.split(".")[1]
    none_header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    assert _reason(f"{none_header}.{payload}.", key, nonce, nonces, clock) == "algorithm"
    hs = jwt.encode(
        json.loads(base64.urlsafe_b64decode(payload + "==")), b"k" * 32, algorithm="HS256"
    )
    assert _reason(hs, key, nonce, nonces, clock) == "algorithm"


def test_signed_by_another_key(key: SigningKey, nonces: NonceRegistry, clock: Clock) -> None:
    nonce = nonces.issue(NODE)
    other = SigningKey.generate(key.algorithm)
    assert _reason(_token(other, nonce, clock), key, nonce, nonces, clock) == "signature"


def test_evidence_of_node_a_presented_by_node_b(
    key: SigningKey, nonces: NonceRegistry, clock: Clock
) -> None:
    nonce = nonces.issue(NODE)
    token_a = _token(key, nonce, clock)
    key_b = SigningKey.generate(key.algorithm)
    # verifier uses B's enrolled key: signature fails
    assert (
        _reason(token_a, key, nonce, nonces, clock, node_id="op1/node-b", node_key=key_b.public())
        == "signature"
    )
    # even with A's key, the token names node A
    assert _reason(token_a, key, nonce, nonces, clock, node_id="op1/node-b") == "node_binding"
    # or the UEID enrolled for the claimed node differs
    assert (
        _reason(token_a, key, nonce, nonces, clock, ueid=b"\x01" + b"\x99" * 16) == "node_binding"
    )


def test_missing_claims(key: SigningKey, nonces: NonceRegistry, clock: Clock) -> None:
    nonce = nonces.issue(NODE)
    token = _forge(key, {"iss": NODE, "sub": NODE, "aud": VERIFIER, "iat": int(clock.now)})
    assert _reason(token, key, nonce, nonces, clock) == "missing_claim"


def test_wrong_audience(key: SigningKey, nonces: NonceRegistry, clock: Clock) -> None:
    nonce = nonces.issue(NODE)
    token = _token(key, nonce, clock, verifier_id="someone-else")
    assert _reason(token, key, nonce, nonces, clock) == "audience"


def test_expired_future_and_long_lived(
    key: SigningKey, nonces: NonceRegistry, clock: Clock
) -> None:
    nonce = nonces.issue(NODE)
    old = _token(key, nonce, clock, now=clock.now - 120)
    assert _reason(old, key, nonce, nonces, clock) == "expired"
    future = _token(key, nonce, clock, now=clock.now + 60)
    assert _reason(future, key, nonce, nonces, clock) == "iat_future"
    base = json.loads(base64.urlsafe_b64decode(old.split(".")[1] + "=="))
    base.update(iat=int(clock.now), exp=int(clock.now) + 3600)
    assert _reason(_forge(key, base), key, nonce, nonces, clock) == "lifetime"


def test_nonce_replayed_expired_and_mismatched(
    key: SigningKey, nonces: NonceRegistry, clock: Clock
) -> None:
    nonce = nonces.issue(NODE)
    token = _token(key, nonce, clock)
    _decode(token, key, nonce, nonces, clock)
    assert _reason(token, key, nonce, nonces, clock) == "nonce_replayed"
    other = nonces.issue(NODE)
    assert _reason(token, key, other, nonces, clock) == "nonce"
    clock.now += 61
    token2 = _token(key, other, clock)
    assert _reason(token2, key, other, nonces, clock) == "nonce_expired"


@pytest.mark.parametrize(
    ("measurements", "accelerators"),
    [
        ({"Agent": "00" * 32}, []),
        ({"agent": "00" * 31}, []),
        ({"agent": 5}, []),
        ([], []),
        ({}, [{"kind": "TPU", "model": "x", "driver_version": "1", "firmware_version": "1"}]),
        ({}, [{"kind": "GPU", "model": "x"}]),
        ({}, [{"kind": "GPU", "model": "x\n", "driver_version": "1", "firmware_version": "1"}]),
        ({}, {}),
    ],
)
def test_malformed_claims(
    key: SigningKey, nonces: NonceRegistry, clock: Clock, measurements: object, accelerators: object
) -> None:
    nonce = nonces.issue(NODE)
    claims = {
        "iss": NODE,
        "sub": NODE,
        "aud": VERIFIER,
        "iat": int(clock.now),
        "exp": int(clock.now) + 60,
        "eat_nonce": base64.urlsafe_b64encode(nonce).rstrip(b"=").decode(),
        "ueid": base64.urlsafe_b64encode(UEID).rstrip(b"=").decode(),
        "cntrust_measurements": measurements,
        "cntrust_accelerators": accelerators,
    }
    assert _reason(_forge(key, claims), key, nonce, nonces, clock) == "malformed"


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "!!!.###.$$$", "x" * 20000, "e30.e30.AA"])
def test_malformed_tokens(token: str, nonces: NonceRegistry, clock: Clock) -> None:
    key = SigningKey.generate("EdDSA")
    assert _reason(token, key, b"n" * 32, nonces, clock) in {"malformed", "algorithm"}


def test_es256_signature_length_checked(nonces: NonceRegistry, clock: Clock) -> None:
    key = SigningKey.generate("ES256")
    nonce = nonces.issue(NODE)
    head, body, _ = _token(key, nonce, clock).split(".")
    short = base64.urlsafe_b64encode(b"\x01" * 63).rstrip(b"=").decode()
    assert _reason(f"{head}.{body}.{short}", key, nonce, nonces, clock) == "signature"


def test_ed25519_checked_as_strictly_as_jwts(nonces: NonceRegistry, clock: Clock) -> None:
    # the same libsodium check as identity.tokens: a malleated S, and the R = neutral point,
    # S = 0 forgery under a small-order enrolled key (OpenSSL accepts the latter)
    key = SigningKey.generate("EdDSA")
    nonce = nonces.issue(NODE)
    head, body, sig = _token(key, nonce, clock).split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    s = int.from_bytes(raw[32:], "little") + 2**252 + 27742317777372353535851937790883648493
    malleated = base64.urlsafe_b64encode(raw[:32] + s.to_bytes(32, "little")).rstrip(b"=")
    assert _reason(f"{head}.{body}.{malleated.decode()}", key, nonce, nonces, clock) == "signature"
    identity_point = (1).to_bytes(32, "little")
    weak = verification_key_from_jwk(
        {"kty": "OKP", "crv": "Ed25519", "kid": "weak", "x": b64u(identity_point)}
    )
    forged = f"{head}.{body}.{b64u(identity_point + bytes(32))}"
    assert _reason(forged, key, nonce, nonces, clock, node_key=weak) == "signature"
    assert _decode(f"{head}.{body}.{sig}", key, nonce, nonces, clock).node_id == NODE


def test_make_eat_bounds_lifetime() -> None:
    with pytest.raises(ValueError):
        make_eat(
            SigningKey.generate(),
            node_id=NODE,
            verifier_id=VERIFIER,
            nonce=b"n",
            ueid=UEID,
            measurements={},
            now=0,
            ttl_s=301,
        )


def test_non_base64url_characters_refused(nonces: NonceRegistry, clock: Clock) -> None:
    key = SigningKey.generate()
    nonce = nonces.issue(NODE)
    head, body, sig = _token(key, nonce, clock).split(".")
    assert _reason(f"{head}.{body}.{sig[:10]}!{sig[10:]}", key, nonce, nonces, clock) == "malformed"
    assert _reason(f"{head}.{body}.{sig}=", key, nonce, nonces, clock) == "malformed"
    _decode(f"{head}.{body}.{sig}", key, nonce, nonces, clock)
