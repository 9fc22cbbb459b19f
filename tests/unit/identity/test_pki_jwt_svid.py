"""JWT-SVIDs: SPIFFE sub, audience required, <= 15 min enforced at issue and at verify."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from identity.errors import TokenVerificationError
from identity.pki import (
    MAX_SERVICE_TOKEN_TTL,
    JwtSvidError,
    JwtSvidIssuer,
    JwtSvidVerifier,
    PkiError,
    RevocationSet,
    SpiffeIdError,
    parse_spiffe_id,
)
from identity.tokens import KeySet, SigningKey, TokenIssuer, TokenVerifier
from tests.unit.identity.test_pki_support import T0, TD, Clock

ISS = "https://cntrust.example"
AUD = "cntrust-api"
NODE = f"spiffe://{TD}/operator/acme/node/n1"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys() -> KeySet:
    return KeySet(SigningKey.generate())


def issuer(keys: KeySet, clock: Clock) -> JwtSvidIssuer:
    return JwtSvidIssuer(TokenIssuer(keys, ISS, clock), TD)


def verifier(keys: KeySet, clock: Clock) -> JwtSvidVerifier:
    return JwtSvidVerifier(TokenVerifier(keys.keys_by_kid, ISS, AUD, clock), TD)


def test_round_trip(keys: KeySet, clock: Clock) -> None:
    token = issuer(keys, clock).issue(NODE, AUD)
    svid = verifier(keys, clock).verify(token)
    assert svid.spiffe_id == parse_spiffe_id(NODE)
    assert svid.audience == (AUD,)
    assert svid.expires_at - svid.issued_at == 300
    assert svid.claims["sub"] == NODE


def test_lifetime_is_enforced_at_issue(keys: KeySet, clock: Clock) -> None:
    assert timedelta(minutes=15) == MAX_SERVICE_TOKEN_TTL
    issuer(keys, clock).issue(NODE, AUD, ttl=timedelta(minutes=15))
    for bad in (timedelta(minutes=15, seconds=1), timedelta(hours=1), timedelta(0)):
        with pytest.raises(PkiError) as info:
            issuer(keys, clock).issue(NODE, AUD, ttl=bad)
        assert info.value.reason == "lifetime"
    # a larger max_ttl cannot lift the 15 minute ceiling
    loose = JwtSvidIssuer(TokenIssuer(keys, ISS, clock), TD, max_ttl=timedelta(hours=2))
    with pytest.raises(PkiError):
        loose.issue(NODE, AUD, ttl=timedelta(hours=1))


def test_lifetime_is_enforced_at_verify(keys: KeySet, clock: Clock) -> None:
    long_token = TokenIssuer(keys, ISS, clock).issue(NODE, AUD, timedelta(hours=1))
    with pytest.raises(JwtSvidError) as info:
        verifier(keys, clock).verify(long_token)
    assert info.value.reason == "lifetime"
    assert isinstance(info.value, TokenVerificationError)


def test_audience_required_at_issue(keys: KeySet, clock: Clock) -> None:
    with pytest.raises(PkiError) as info:
        issuer(keys, clock).issue(NODE, "")
    assert info.value.reason == "audience"


def test_wrong_audience_refused(keys: KeySet, clock: Clock) -> None:
    token = issuer(keys, clock).issue(NODE, "other-service")
    with pytest.raises(TokenVerificationError) as info:
        verifier(keys, clock).verify(token)
    assert info.value.reason == "audience"


@pytest.mark.parametrize(
    "sub",
    [
        f"spiffe://{TD}/operator/acme/node/..",
        f"SPIFFE://{TD}/x",
        "user@example.org",
        f"spiffe://{TD}/a%2e",
    ],
)
def test_non_spiffe_sub_refused_at_issue_and_verify(keys: KeySet, clock: Clock, sub: str) -> None:
    with pytest.raises(SpiffeIdError):
        issuer(keys, clock).issue(sub, AUD)
    token = TokenIssuer(keys, ISS, clock).issue(sub, AUD, timedelta(minutes=5))
    with pytest.raises(JwtSvidError) as info:
        verifier(keys, clock).verify(token)
    assert info.value.reason == "spiffe_id"


def test_other_trust_domain_refused(keys: KeySet, clock: Clock) -> None:
    foreign = "spiffe://evil.org/operator/acme/node/n1"
    with pytest.raises(SpiffeIdError) as err:
        issuer(keys, clock).issue(foreign, AUD)
    assert err.value.reason == "other_trust_domain"
    token = TokenIssuer(keys, ISS, clock).issue(foreign, AUD, timedelta(minutes=5))
    with pytest.raises(JwtSvidError) as info:
        verifier(keys, clock).verify(token)
    assert info.value.reason == "other_trust_domain"


def test_token_checks_still_apply(keys: KeySet, clock: Clock) -> None:
    token = issuer(keys, clock).issue(NODE, AUD)
    clock.now = T0 + 3600
    with pytest.raises(TokenVerificationError) as info:
        verifier(keys, clock).verify(token)
    assert info.value.reason == "expired"
    none_token = jwt.encode({"sub": NODE}, key=None, algorithm="none")
    with pytest.raises(TokenVerificationError) as info:
        verifier(keys, clock).verify(none_token)
    assert info.value.reason == "algorithm"


def test_revoked_node_tokens_are_refused(keys: KeySet, clock: Clock) -> None:
    revocations = RevocationSet()

    def current() -> RevocationSet:
        return revocations

    checked = JwtSvidVerifier(
        TokenVerifier(keys.keys_by_kid, ISS, AUD, clock), TD, revocations=current
    )
    token = issuer(keys, clock).issue(NODE, AUD)
    assert checked.verify(token).spiffe_id.uri == NODE
    revocations = RevocationSet.of(spiffe_ids=[NODE])  # takes effect on the next call
    with pytest.raises(JwtSvidError) as info:
        checked.verify(token)
    assert info.value.reason == "revoked"
    revocations = RevocationSet.of(operators=["acme"])
    with pytest.raises(JwtSvidError) as info:
        checked.verify(token)
    assert info.value.reason == "operator_revoked"
    other = issuer(keys, clock).issue(f"spiffe://{TD}/service/acme", AUD)
    assert checked.verify(other).spiffe_id.segments == ("service", "acme")
