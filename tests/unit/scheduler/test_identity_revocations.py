"""RevocationCache: refresh interval on an injected clock, local additions, failures."""

from __future__ import annotations

import pytest

from scheduler.identity_revocations import RevocationCache, RevocationSnapshot
from tests.conftest import FakeClock


class FakeDb:
    def __init__(self) -> None:
        self.snapshot = RevocationSnapshot()
        self.loads = 0
        self.fail = False

    def load(self) -> RevocationSnapshot:
        self.loads += 1
        if self.fail:
            raise RuntimeError("database down")
        return self.snapshot


def test_refreshes_only_after_the_interval():
    clock, db = FakeClock(1000.0), FakeDb()
    cache = RevocationCache(db.load, clock, refresh_interval_s=1.0)
    assert not cache.node_revoked("n1") and db.loads == 1
    db.snapshot = RevocationSnapshot.of(node_ids=["n1"], serials=[7])
    clock.advance(0.999)
    assert not cache.node_revoked("n1") and db.loads == 1
    clock.advance(0.001)
    assert cache.node_revoked("n1") and db.loads == 2
    assert 7 in cache.snapshot().revocations.serials


def test_local_addition_is_immediate_and_kept_by_a_stale_refresh():
    clock, db = FakeClock(), FakeDb()
    cache = RevocationCache(db.load, clock)
    cache.snapshot()
    cache.add(RevocationSnapshot.of(node_ids=["n2"], spiffe_ids=["spiffe://td/operator/o/node/n2"]))
    assert cache.node_revoked("n2")
    clock.advance(5)  # the database read does not show it yet (another replica's lag)
    assert cache.node_revoked("n2") and db.loads == 2


def test_a_failing_refresh_keeps_what_is_known():
    clock, db = FakeClock(), FakeDb()
    db.snapshot = RevocationSnapshot.of(node_ids=["n1"])
    cache = RevocationCache(db.load, clock)
    assert cache.node_revoked("n1")
    db.fail = True
    clock.advance(2)
    assert cache.node_revoked("n1")
    db.fail, db.snapshot = False, RevocationSnapshot.of(node_ids=["n1", "n3"])
    clock.advance(0.5)  # the failed refresh did not count as a refresh
    assert cache.node_revoked("n3")


def test_interval_must_be_positive():
    with pytest.raises(ValueError):
        RevocationCache(FakeDb().load, FakeClock(), refresh_interval_s=0)
