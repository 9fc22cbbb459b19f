"""identity.tokens: every bad JWT the issue lists is refused with a specific reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from identity.errors import TokenVerificationError, VerificationError
from identity.tokens import (
    HEADER_CACHE_SIZE,
    KeySet,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
    VerificationKey,
    keys_by_kid,
    verification_key_from_jwk,
)

T0 = 1_800_000_000.0
ISS = "https://cntrust.example"
AUD = "cntrust-api"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(params=["EdDSA", "ES256"])
def key(request: pytest.FixtureRequest) -> SigningKey:
    return SigningKey.generate(request.param)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def verifier_for(keys: KeySet, clock: Clock, audience: str = AUD) -> TokenVerifier:
    return TokenVerifier(keys.keys_by_kid, ISS, audience, clock)


def signed(key: SigningKey, payload: dict[str, Any], **header: Any) -> str:
    return jwt.encode(
        payload, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, **header}
    )


def claims(now: float = T0, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "tenant-1",
        "iat": int(now),
        "exp": int(now) + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def reason_of(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(TokenVerificationError) as info:
        verifier.verify(token)
    assert isinstance(info.value, VerificationError)
    return info.value.reason


def test_issued_token_round_trips(key: SigningKey, clock: Clock) -> None:
    keys = KeySet(key)
    token = TokenIssuer(keys, ISS, clock).issue("tenant-1", AUD, timedelta(minutes=5))
    got = verifier_for(keys, clock).verify(token)
    assert got["sub"] == "tenant-1"
    assert got["exp"] - got["iat"] == 300
    assert jwt.get_unverified_header(token)["kid"] == key.kid


def test_alg_none_is_refused(key: SigningKey, clock: Clock) -> None:
    header = b64u(json.dumps({"alg": "none", "typ": "JWT", "kid": key.kid}).encode())
    payload = b64u(json.dumps(claims()).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        assert reason_of(verifier_for(KeySet(key), clock), token) in ("algorithm", "malformed")
    assert reason_of(verifier_for(KeySet(key), clock), f"{header}.{payload}.") == "algorithm"


def test_hs256_signed_with_the_public_key_is_refused(key: SigningKey, clock: Clock) -> None:
    # the classic key-confusion attack, crafted by hand: HMAC keyed with the public key PEM
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64u(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    payload = b64u(json.dumps(claims()).encode())
    signing_input = f"{header}.{payload}".encode()
    mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    token = f"{header}.{payload}.{b64u(mac)}"
    assert reason_of(verifier_for(KeySet(key), clock), token) == "algorithm"


@pytest.mark.parametrize("missing", ["exp", "aud", "sub", "iat", "iss"])
def test_missing_required_claim_is_refused(key: SigningKey, clock: Clock, missing: str) -> None:
    token = signed(key, claims(**{missing: None}))
    assert reason_of(verifier_for(KeySet(key), clock), token) == "missing_claim"


def test_empty_sub_is_refused(key: SigningKey, clock: Clock) -> None:
    token = signed(key, claims(sub=""))
    assert reason_of(verifier_for(KeySet(key), clock), token) == "missing_claim"


def test_wrong_audience_is_refused(key: SigningKey, clock: Clock) -> None:
    token = signed(key, claims(aud="another-service"))
    assert reason_of(verifier_for(KeySet(key), clock), token) == "audience"


def test_audience_list_containing_ours_is_accepted(key: SigningKey, clock: Clock) -> None:
    token = signed(key, claims(aud=["x", AUD]))
    assert verifier_for(KeySet(key), clock).verify(token)["aud"] == ["x", AUD]


def test_wrong_issuer_is_refused(key: SigningKey, clock: Clock) -> None:
    token = signed(key, claims(iss="https://evil.example"))
    assert reason_of(verifier_for(KeySet(key), clock), token) == "issuer"


def test_expired_token_is_refused_and_leeway_is_honoured(key: SigningKey, clock: Clock) -> None:
    token = signed(key, claims(iat=int(T0) - 600, exp=int(T0) - 10))
    verifier = verifier_for(KeySet(key), clock)
    assert verifier.verify(token)["sub"] == "tenant-1"  # 10 s late: inside the 30 s leeway
    clock.now = T0 + 21
    assert reason_of(verifier, token) == "expired"


def test_iat_in_the_future_is_refused(key: SigningKey, clock: Clock) -> None:
    token = signed(key, claims(iat=int(T0) + 120, exp=int(T0) + 400))
    assert reason_of(verifier_for(KeySet(key), clock), token) == "iat_future"


def test_nbf_in_the_future_is_refused(key: SigningKey, clock: Clock) -> None:
    token = signed(key, claims(nbf=int(T0) + 120))
    assert reason_of(verifier_for(KeySet(key), clock), token) == "not_yet_valid"


def test_unknown_kid_is_refused(key: SigningKey, clock: Clock) -> None:
    other = SigningKey.generate(key.algorithm)
    token = signed(other, claims())
    assert reason_of(verifier_for(KeySet(key), clock), token) == "unknown_kid"


def test_missing_kid_is_refused(key: SigningKey, clock: Clock) -> None:
    token = jwt.encode(claims(), key.private_key, algorithm=key.algorithm)
    assert reason_of(verifier_for(KeySet(key), clock), token) == "unknown_kid"


def test_known_kid_with_another_keys_signature_is_refused(key: SigningKey, clock: Clock) -> None:
    other = SigningKey.generate(key.algorithm)
    token = jwt.encode(
        claims(), other.private_key, algorithm=key.algorithm, headers={"kid": key.kid}
    )
    assert reason_of(verifier_for(KeySet(key), clock), token) == "signature"


def test_header_algorithm_must_match_the_keys(clock: Clock) -> None:
    ed, ec_key = SigningKey.generate("EdDSA"), SigningKey.generate("ES256")
    # ES256 signature presented under the Ed25519 key's kid
    token = jwt.encode(claims(), ec_key.private_key, algorithm="ES256", headers={"kid": ed.kid})
    assert reason_of(verifier_for(KeySet(ed), clock), token) == "algorithm"


def test_tampered_payload_is_refused(key: SigningKey, clock: Clock) -> None:
    header, _, sig = signed(key, claims()).split(".")
    forged = b64u(json.dumps(claims(sub="admin")).encode())
    assert reason_of(verifier_for(KeySet(key), clock), f"{header}.{forged}.{sig}") == "signature"


@pytest.mark.parametrize(
    "bad",
    [
        {"exp": "99999999999"},
        {"exp": True},
        {"iat": "now"},
        {"nbf": "abc"},
        {"exp": [1]},
    ],
)
def test_non_numeric_dates_are_refused(key: SigningKey, clock: Clock, bad: dict[str, Any]) -> None:
    token = signed(key, claims(**bad))
    assert reason_of(verifier_for(KeySet(key), clock), token) == "malformed"


def test_nan_exp_never_passes(key: SigningKey, clock: Clock) -> None:
    # Python's json writes and reads NaN; a NaN exp compared with <= is never "expired"
    token = signed(key, claims(exp=float("nan")))
    assert reason_of(verifier_for(KeySet(key), clock), token) == "malformed"


@pytest.mark.parametrize(
    "token",
    ["", "a", "a.b", "a.b.c", "...", "\ud800.x.y", "é.é.é", "x" * 9000, "e30.e30.e30"],
)
def test_garbage_is_malformed(key: SigningKey, clock: Clock, token: str) -> None:
    assert reason_of(verifier_for(KeySet(key), clock), token) in ("malformed", "algorithm")


def test_non_string_token_is_malformed(key: SigningKey, clock: Clock) -> None:
    assert reason_of(verifier_for(KeySet(key), clock), b"abc") == "malformed"  # type: ignore[arg-type]


def test_rotation_old_key_verifies_until_its_tokens_expire(clock: Clock) -> None:
    old = SigningKey.generate()
    keys = KeySet(old)
    issuer = TokenIssuer(keys, ISS, clock)
    verifier = verifier_for(keys, clock)
    old_token = issuer.issue("svc", AUD, timedelta(minutes=10))
    # a token minted with the old key that claims a longer life than the rotation window
    long_token = signed(old, claims(exp=int(T0) + 3600))

    clock.now = T0 + 60
    new = SigningKey.generate()
    keys.rotate(new, now=clock.now, max_token_ttl=timedelta(minutes=15))
    new_token = issuer.issue("svc", AUD, timedelta(minutes=10))
    assert jwt.get_unverified_header(new_token)["kid"] == new.kid
    # no downtime: both verify right after the rotation
    assert verifier.verify(old_token)["sub"] == "svc"
    assert verifier.verify(new_token)["sub"] == "svc"
    assert {k["kid"] for k in keys.jwks()["keys"]} == {old.kid, new.kid}

    # after the old key's window, its tokens are refused even if they claim to be alive
    clock.now = T0 + 60 + 15 * 60 + 1
    assert reason_of(verifier, long_token) == "unknown_kid"
    keys.prune(now=clock.now)
    assert [k.kid for k in keys.verification_keys()] == [new.kid]
    assert reason_of(verifier, long_token) == "unknown_kid"


def test_jwks_round_trip(clock: Clock) -> None:
    first, second = SigningKey.generate("EdDSA"), SigningKey.generate("ES256")
    keys = KeySet(first)
    token_first = TokenIssuer(keys, ISS, clock).issue("a", AUD, timedelta(minutes=5))
    keys.rotate(second, now=T0, max_token_ttl=timedelta(minutes=15))
    token_second = TokenIssuer(keys, ISS, clock).issue("b", AUD, timedelta(minutes=5))

    published = json.loads(json.dumps(keys.jwks()))
    parsed = [verification_key_from_jwk(jwk) for jwk in published["keys"]]
    assert {k.kid for k in parsed} == {first.kid, second.kid}
    retired = next(k for k in parsed if k.kid == first.kid)
    assert retired.not_after == T0 + 900
    for jwk in published["keys"]:
        assert "d" not in jwk  # never the private part
    index = keys_by_kid(parsed)
    remote = TokenVerifier(lambda: index, ISS, AUD, clock)
    assert remote.verify(token_first)["sub"] == "a"
    assert remote.verify(token_second)["sub"] == "b"


def test_kid_is_the_rfc7638_thumbprint() -> None:
    key = SigningKey.generate()
    assert verification_key_from_jwk(key.public().to_jwk()).kid == key.kid
    assert SigningKey.from_pem(key.to_pem()).kid == key.kid


@pytest.mark.parametrize(
    "jwk",
    [
        [],
        "x",
        {},
        {"kid": "a", "kty": "RSA", "n": "x", "e": "AQAB"},
        {"kid": "a", "kty": "oct", "k": "c2VjcmV0"},
        {"kid": "a", "kty": "OKP", "crv": "Ed25519", "x": "short"},
        {"kid": "a", "kty": "OKP", "crv": "Ed25519", "x": 5},
        {"kid": "a", "kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
        {"kid": 7, "kty": "OKP", "crv": "Ed25519", "x": "A" * 43},
        {"kid": "a", "kty": "OKP", "crv": "Ed25519", "x": "A" * 43, "exp": "soon"},
        {"kid": "a", "kty": "OKP", "crv": "Ed25519", "x": "A" * 43, "exp": "inf"},
    ],
)
def test_bad_jwk_is_refused(jwk: Any) -> None:
    with pytest.raises(TokenVerificationError) as info:
        verification_key_from_jwk(jwk)
    assert info.value.reason == "jwk"


def test_signing_key_refuses_other_algorithms() -> None:
    with pytest.raises(ValueError):
        SigningKey.generate("HS256")


def test_issuer_refuses_non_positive_ttl(key: SigningKey, clock: Clock) -> None:
    with pytest.raises(ValueError):
        TokenIssuer(KeySet(key), ISS, clock).issue("a", AUD, timedelta(0))


def test_verification_key_retired_window_is_exclusive(key: SigningKey, clock: Clock) -> None:
    retired = VerificationKey(key.kid, key.algorithm, key.private_key.public_key(), T0)
    index = keys_by_kid([retired])
    verifier = TokenVerifier(lambda: index, ISS, AUD, clock)
    assert reason_of(verifier, signed(key, claims())) == "unknown_kid"
    clock.now = T0 - 1
    assert verifier.verify(signed(key, claims(now=T0 - 1)))["sub"] == "tenant-1"


def _resign(key: SigningKey, header_b64: str, payload_b64: str) -> str:
    """Sign arbitrary (possibly odd) segments with the real key, as JWS does."""
    signing_input = f"{header_b64}.{payload_b64}".encode()
    private = key.private_key
    if isinstance(private, ed25519.Ed25519PrivateKey):
        sig = private.sign(signing_input)
    else:
        der = private.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{header_b64}.{payload_b64}.{b64u(sig)}"


def _header(key: SigningKey, **extra: Any) -> str:
    return b64u(json.dumps({"alg": key.algorithm, "kid": key.kid, **extra}).encode())


def test_hand_signed_token_verifies(key: SigningKey, clock: Clock) -> None:
    token = _resign(key, _header(key), b64u(json.dumps(claims()).encode()))
    assert verifier_for(KeySet(key), clock).verify(token)["sub"] == "tenant-1"


@pytest.mark.parametrize(
    "extra",
    [{"crit": ["exp"]}, {"b64": False}],
)
def test_jws_extensions_are_refused(key: SigningKey, clock: Clock, extra: dict[str, Any]) -> None:
    token = _resign(key, _header(key, **extra), b64u(json.dumps(claims()).encode()))
    assert reason_of(verifier_for(KeySet(key), clock), token) == "malformed"


def test_non_canonical_base64_is_refused(key: SigningKey, clock: Clock) -> None:
    token = signed(key, claims())
    header, payload, sig = token.split(".")
    verifier = verifier_for(KeySet(key), clock)
    assert reason_of(verifier, f"{header}.{payload}.{sig}=") == "malformed"  # padding
    assert reason_of(verifier, f"{header}.{payload}.{sig}A") in ("malformed", "signature")
    # flip unused trailing bits of the last character: same bytes, other spelling
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    unused_bits = {2: 4, 3: 2}.get(len(sig) % 4, 0)
    if unused_bits:
        twin = sig[:-1] + alphabet[last ^ 1]
        assert reason_of(verifier, f"{header}.{payload}.{twin}") == "malformed"
    assert reason_of(verifier, f"{header}.{payload}.{sig}.extra") == "malformed"
    assert reason_of(verifier, f"{header}.{payload}.{sig[:-4]}!!!!") == "malformed"


def test_payload_must_be_a_json_object(key: SigningKey, clock: Clock) -> None:
    verifier = verifier_for(KeySet(key), clock)
    for payload in (b"[1]", b"not json", b'{"exp": NaN}', b'"x"'):
        token = _resign(key, _header(key), b64u(payload))
        assert reason_of(verifier, token) == "malformed"


def test_es256_signature_length_is_checked(clock: Clock) -> None:
    key = SigningKey.generate("ES256")
    header, payload, sig = signed(key, claims()).split(".")
    short = b64u(base64.urlsafe_b64decode(sig + "==")[:63])
    assert reason_of(verifier_for(KeySet(key), clock), f"{header}.{payload}.{short}") == "signature"


def test_audience_of_wrong_type_is_refused(key: SigningKey, clock: Clock) -> None:
    for aud in ({"a": AUD}, 5, [["x"]]):
        token = signed(key, claims(aud=aud))
        assert reason_of(verifier_for(KeySet(key), clock), token) == "audience"


# --- the fast path: header cache, kid -> key mapping, strict base64url ---------------------


def _sized_header(key: SigningKey, rest: int) -> str:
    """A header segment of length 4n + rest, padded with a harmless extra member."""
    for n in range(8):
        header = _header(key, pad="x" * n)
        if len(header) % 4 == rest:
            return header
    raise AssertionError("no header of that length")


def _twin(segment: str) -> str:
    """The same bytes spelt with a non-zero unused bit in the last character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(segment) % 4 in (2, 3)
    twin = segment[:-1] + alphabet[alphabet.index(segment[-1]) ^ 1]
    assert base64.urlsafe_b64decode(twin + "==") == base64.urlsafe_b64decode(segment + "==")
    return twin


@pytest.mark.parametrize("rest", [2, 3])
def test_header_cache_never_stands_in_for_another_header(
    key: SigningKey, clock: Clock, rest: int
) -> None:
    verifier = verifier_for(KeySet(key), clock)
    header = _sized_header(key, rest)
    payload = b64u(json.dumps(claims()).encode())
    good = _resign(key, header, payload)
    assert verifier.verify(good)["sub"] == "tenant-1"  # the header is now remembered
    # the same bytes spelt differently, correctly signed: parsed afresh and refused
    assert reason_of(verifier, _resign(key, _twin(header), payload)) == "malformed"
    # other headers with the same kid, correctly signed: each checked in full
    other_alg = b64u(json.dumps({"alg": "HS256", "kid": key.kid}).encode())
    assert reason_of(verifier, _resign(key, other_alg, payload)) == "algorithm"
    crit = _header(key, crit=["exp"])
    assert reason_of(verifier, _resign(key, crit, payload)) == "malformed"
    other_kid = b64u(json.dumps({"alg": key.algorithm, "kid": "someone-else"}).encode())
    assert reason_of(verifier, _resign(key, other_kid, payload)) == "unknown_kid"
    # the remembered header still needs a good signature for its payload
    forged = b64u(json.dumps(claims(sub="admin")).encode())
    assert reason_of(verifier, f"{header}.{forged}.{good.split('.')[2]}") == "signature"
    assert verifier.verify(good)["sub"] == "tenant-1"


def test_header_cache_is_bounded_and_filled_only_by_good_signatures(
    key: SigningKey, clock: Clock
) -> None:
    verifier = verifier_for(KeySet(key), clock)
    payload = b64u(json.dumps(claims()).encode())
    other = SigningKey.generate(key.algorithm)
    for i in range(3 * HEADER_CACHE_SIZE):
        header = _header(key, n=i)
        assert verifier.verify(_resign(key, header, payload))["sub"] == "tenant-1"
        assert reason_of(verifier, _resign(other, _header(key, m=i), payload)) == "signature"
        assert 0 < len(verifier._headers) <= HEADER_CACHE_SIZE
        remembered = [json.loads(base64.urlsafe_b64decode(h + b"==")) for h in verifier._headers]
        assert all("n" in header and "m" not in header for header in remembered)


def test_rotated_out_key_stops_verifying_at_once(key: SigningKey, clock: Clock) -> None:
    keys = KeySet(key)
    verifier = verifier_for(keys, clock)
    token = signed(key, claims())
    assert verifier.verify(token)["sub"] == "tenant-1"  # header remembered, key mapped
    keys.rotate(SigningKey.generate(), now=clock.now, max_token_ttl=timedelta(minutes=15))
    assert verifier.verify(token)["sub"] == "tenant-1"  # retired, inside its window
    keys.retired.clear()  # changed in place, not through prune: still seen at once
    assert reason_of(verifier, token) == "unknown_kid"
    keys.active = key  # assigned back directly
    assert verifier.verify(token)["sub"] == "tenant-1"
    keys.active = SigningKey.generate(key.algorithm)
    assert reason_of(verifier, token) == "unknown_kid"


def test_keyset_mapping_is_reused_until_the_set_changes(key: SigningKey, clock: Clock) -> None:
    keys = KeySet(key)
    first = keys.keys_by_kid()
    assert keys.keys_by_kid() is first  # no rebuild per verification
    assert list(first) == [key.kid]
    with pytest.raises(TypeError):
        first["x"] = first[key.kid]  # type: ignore[index]
    new = SigningKey.generate()
    keys.rotate(new, now=T0, max_token_ttl=timedelta(minutes=15))
    second = keys.keys_by_kid()
    assert second is not first and list(second) == [new.kid, key.kid]
    assert second[key.kid].not_after == T0 + 900
    keys.prune(now=T0 + 901)
    assert list(keys.keys_by_kid()) == [new.kid]


def test_keys_by_kid_first_key_wins(key: SigningKey) -> None:
    retired = VerificationKey(key.kid, key.algorithm, key.private_key.public_key(), T0)
    assert keys_by_kid([key.public(), retired])[key.kid].not_after is None
    assert keys_by_kid([retired, key.public()])[key.kid].not_after == T0


@pytest.mark.parametrize("kid", [["a"], {"k": 1}, 7, None, True])
def test_kid_that_is_not_a_string_is_unknown(key: SigningKey, clock: Clock, kid: Any) -> None:
    header = b64u(json.dumps({"alg": key.algorithm, "kid": kid}).encode())
    token = _resign(key, header, b64u(json.dumps(claims()).encode()))
    assert reason_of(verifier_for(KeySet(key), clock), token) == "unknown_kid"


@pytest.mark.parametrize("where", [0, 1, 2])
@pytest.mark.parametrize("char", ["+", "/", "=", " ", "\n", "."])
def test_characters_outside_base64url_are_malformed(
    key: SigningKey, clock: Clock, where: int, char: str
) -> None:
    parts = signed(key, claims()).split(".")
    parts[where] = parts[where][:8] + char + parts[where][8:]
    # correctly signed, so that the payload's shape is what is judged
    token = ".".join(parts) if where == 2 else _resign(key, parts[0], parts[1])
    assert reason_of(verifier_for(KeySet(key), clock), token) == "malformed"


@pytest.mark.parametrize("where", [0, 1])
def test_non_canonical_header_or_payload_is_refused(
    key: SigningKey, clock: Clock, where: int
) -> None:
    header = _sized_header(key, 2)
    payload = b64u(json.dumps(claims(x="y")).encode())
    payload = next(
        b64u(json.dumps(claims(x="y" * n)).encode())
        for n in range(8)
        if len(b64u(json.dumps(claims(x="y" * n)).encode())) % 4 == 3
    )
    verifier = verifier_for(KeySet(key), clock)
    assert verifier.verify(_resign(key, header, payload))["sub"] == "tenant-1"
    parts = [header, payload]
    parts[where] = _twin(parts[where])
    assert reason_of(verifier, _resign(key, *parts)) == "malformed"


def test_segment_of_4n_plus_1_characters_is_malformed(key: SigningKey, clock: Clock) -> None:
    header, payload, sig = signed(key, claims()).split(".")
    verifier = verifier_for(KeySet(key), clock)
    for n in range(1, 4):
        bad = sig + "A" * n
        if len(bad) % 4 == 1:
            assert reason_of(verifier, f"{header}.{payload}.{bad}") == "malformed"


@pytest.mark.parametrize(
    "payload",
    [
        lambda c: json.dumps(c).encode("utf-16"),
        lambda c: b"\xef\xbb\xbf" + json.dumps(c).encode(),  # UTF-8 byte order mark
        lambda c: json.dumps(c).encode()[:-1] + b',"x":"\xed\xa0\x80"}',  # a lone surrogate
        lambda c: json.dumps(c).encode() + b" x",
        lambda c: json.dumps(c).encode() + json.dumps(c).encode(),
        lambda c: json.dumps(c).encode()[:-1],
    ],
)
def test_claims_must_be_one_utf8_json_object(
    key: SigningKey, clock: Clock, payload: Callable[[dict[str, Any]], bytes]
) -> None:
    token = _resign(key, _header(key), b64u(payload(claims())))
    assert reason_of(verifier_for(KeySet(key), clock), token) == "malformed"


def test_json_whitespace_around_objects_is_still_accepted(key: SigningKey, clock: Clock) -> None:
    header = b64u(b" \n" + json.dumps({"alg": key.algorithm, "kid": key.kid}).encode() + b"\t")
    token = _resign(key, header, b64u(b"\r\n" + json.dumps(claims()).encode() + b" \n"))
    assert verifier_for(KeySet(key), clock).verify(token)["sub"] == "tenant-1"


@pytest.mark.parametrize("name", ["exp", "iat", "nbf"])
def test_date_beyond_float_range_is_malformed(key: SigningKey, clock: Clock, name: str) -> None:
    # json.loads gives an int too large for float(); that must not escape as OverflowError
    token = _resign(key, _header(key), b64u(json.dumps(claims(**{name: 10**400})).encode()))
    assert reason_of(verifier_for(KeySet(key), clock), token) == "malformed"


def test_verification_key_algorithm_must_be_the_keys() -> None:
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    for algorithm, public in (("ES256", ed), ("EdDSA", p256), ("ES256", p384), ("HS256", ed)):
        with pytest.raises(ValueError):
            VerificationKey("k", algorithm, public)


# --- Ed25519 through libsodium: at least as strict as OpenSSL ----------------------------

ED25519_L = 2**252 + 27742317777372353535851937790883648493  # the prime group order
ED25519_P = 2**255 - 19
IDENTITY = (1).to_bytes(32, "little")  # the neutral point (0, 1): order 1


def _eddsa_key_from_raw(raw: bytes, kid: str = "weak") -> VerificationKey:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw), "kid": kid}
    return verification_key_from_jwk(jwk)


def test_non_canonical_s_is_refused(clock: Clock) -> None:
    # S + L satisfies the verification equation too: a second signature for the same token
    key = SigningKey.generate("EdDSA")
    header, payload, sig = signed(key, claims()).split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    s = int.from_bytes(raw[32:], "little")
    malleated = raw[:32] + (s + ED25519_L).to_bytes(32, "little")
    verifier = verifier_for(KeySet(key), clock)
    assert verifier.verify(f"{header}.{payload}.{sig}")["sub"] == "tenant-1"
    assert reason_of(verifier, f"{header}.{payload}.{b64u(malleated)}") == "signature"


@pytest.mark.parametrize(
    "public",
    [
        IDENTITY,
        (ED25519_P + 1).to_bytes(32, "little"),  # the neutral point, non-canonical y
        (ED25519_P - 1).to_bytes(32, "little"),  # (0, -1): order 2
        bytes(32),  # y = 0: order 4
    ],
)
@pytest.mark.parametrize("message", ["a", "b"])
def test_small_order_key_forgery_is_refused(clock: Clock, public: bytes, message: str) -> None:
    # R = neutral point, S = 0 satisfies [S]B = R + [k]A whenever [k]A is neutral: for the
    # identity key that is every message (OpenSSL accepts it), for the others half or a
    # quarter of them. A published JWKS could carry such a key.
    weak = _eddsa_key_from_raw(public)
    verifier = TokenVerifier(lambda: keys_by_kid([weak]), ISS, AUD, Clock())
    header = b64u(json.dumps({"alg": "EdDSA", "kid": "weak"}).encode())
    payload = b64u(json.dumps(claims(sub=message)).encode())
    assert reason_of(verifier, f"{header}.{payload}.{b64u(IDENTITY + bytes(32))}") == "signature"


def test_small_order_r_is_refused(clock: Clock) -> None:
    key = SigningKey.generate("EdDSA")
    header, payload, _ = signed(key, claims()).split(".")
    verifier = verifier_for(KeySet(key), clock)
    for r in (IDENTITY, (ED25519_P - 1).to_bytes(32, "little"), bytes(32)):
        assert reason_of(verifier, f"{header}.{payload}.{b64u(r + bytes(32))}") == "signature"


@pytest.mark.parametrize("length", [0, 32, 63, 65, 128])
def test_signature_of_wrong_length_is_refused(key: SigningKey, clock: Clock, length: int) -> None:
    header, payload, sig = signed(key, claims()).split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    wrong = (raw * 2)[:length]
    verifier = verifier_for(KeySet(key), clock)
    assert reason_of(verifier, f"{header}.{payload}.{b64u(wrong)}") == "signature"
    # libsodium takes signature || message: a 63-byte signature must not borrow a byte
    shifted = f"{header}.{payload}"
    token = f"{shifted}.{b64u(raw[:63])}"
    assert reason_of(verifier, token) == "signature"
