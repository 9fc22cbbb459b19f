"""Join tokens: random, stored hashed, single use, expiring, bound to an operator."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest

from identity.errors import VerificationError
from identity.pki import (
    InMemoryJoinTokenStore,
    JoinTokenError,
    JoinTokenRecord,
    PkiError,
    SpiffeIdError,
    create_join_token,
    hash_join_token_secret,
    join_token_id,
    verify_join_token,
)
from tests.unit.identity.test_pki_support import T0


def reason(token: object, record: JoinTokenRecord | None, now: float = T0 + 1) -> str:
    with pytest.raises(JoinTokenError) as info:
        verify_join_token(token, record, now=now)
    assert isinstance(info.value, VerificationError)
    return info.value.reason


def test_create_and_verify() -> None:
    token, record = create_join_token("acme", now=T0, ttl=timedelta(minutes=30))
    assert token.startswith("cntj1.")
    assert record.operator == "acme"
    assert record.expires_at == T0 + 1800
    assert record.used_at is None
    assert join_token_id(token) == record.token_id
    verify_join_token(token, record, now=T0 + 1)


def test_only_a_hash_is_stored() -> None:
    token, record = create_join_token("acme", now=T0)
    secret = token.split(".")[2]
    assert secret not in repr(record)
    assert token not in repr(record)
    assert record.token_hash == hash_join_token_secret(secret)
    assert len(record.token_hash) == 64


def test_tokens_are_random() -> None:
    tokens = {create_join_token("acme", now=T0)[0] for _ in range(50)}
    assert len(tokens) == 50


def test_randomness_is_injectable() -> None:
    fixed = create_join_token("acme", now=T0, random_bytes=lambda n: b"\x01" * n)
    assert fixed == create_join_token("acme", now=T0, random_bytes=lambda n: b"\x01" * n)


def test_reused_token_is_refused() -> None:
    token, record = create_join_token("acme", now=T0)
    used = record.consumed(T0 + 1, node_id="n1")
    assert (used.used_at, used.used_by) == (T0 + 1, "n1")
    assert reason(token, used) == "reused"


def test_expired_token_is_refused() -> None:
    token, record = create_join_token("acme", now=T0, ttl=timedelta(hours=1))
    verify_join_token(token, record, now=T0 + 3599)
    assert reason(token, record, now=T0 + 3600) == "expired"


def test_reuse_is_reported_before_expiry() -> None:
    token, record = create_join_token("acme", now=T0)
    assert reason(token, record.consumed(T0 + 1), now=T0 + 7200) == "reused"


def test_unknown_token() -> None:
    token, record = create_join_token("acme", now=T0)
    other_token, other_record = create_join_token("acme", now=T0)
    assert reason(token, None) == "unknown"
    assert reason(token, other_record) == "unknown"  # record for another id
    # right id, wrong secret
    forged = f"cntj1.{record.token_id}.{other_token.split('.')[2]}"
    assert reason(forged, record) == "unknown"
    # a stored hash that does not match
    assert reason(token, replace(record, token_hash="0" * 64)) == "unknown"


@pytest.mark.parametrize(
    "token",
    ["", "cntj1", "cntj1..", "cntj2.0123456789abcdef." + "A" * 43, "x" * 500, None, 5, b"cntj1"],
)
def test_malformed_tokens_are_unknown(token: object) -> None:
    _, record = create_join_token("acme", now=T0)
    assert reason(token, record) == "unknown"
    with pytest.raises(JoinTokenError):
        join_token_id(token)


def test_operator_binding_and_limits() -> None:
    with pytest.raises(SpiffeIdError):
        create_join_token("../acme", now=T0)
    for bad in (timedelta(0), timedelta(days=8)):
        with pytest.raises(PkiError) as info:
            create_join_token("acme", now=T0, ttl=bad)
        assert info.value.reason == "lifetime"


def test_store_redeem_is_single_use() -> None:
    store = InMemoryJoinTokenStore()
    token, record = create_join_token("beta", now=T0)
    store.add(record)
    used = store.redeem(token, now=T0 + 1, node_id="n7")
    assert used.operator == "beta"
    assert store.get(record.token_id) == used
    with pytest.raises(JoinTokenError) as info:
        store.redeem(token, now=T0 + 2)
    assert info.value.reason == "reused"
    with pytest.raises(JoinTokenError) as info:
        store.redeem(create_join_token("beta", now=T0)[0], now=T0 + 2)
    assert info.value.reason == "unknown"


def test_store_redeem_is_atomic_under_threads() -> None:
    store = InMemoryJoinTokenStore()
    token, record = create_join_token("acme", now=T0)
    store.add(record)
    wins: list[str] = []
    losses: list[str] = []

    def attempt(i: int) -> None:
        try:
            store.redeem(token, now=T0 + 1, node_id=f"n{i}")
            wins.append(f"n{i}")
        except JoinTokenError as exc:
            losses.append(exc.reason)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert losses == ["reused"] * 15
