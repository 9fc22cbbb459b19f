"""PolicyStore swaps (never to an invalid set) and replay of stored decisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies import (
    CedarEngine,
    Decision,
    PolicyLoadError,
    PolicySet,
    PolicyStore,
    PolicyVersionMismatchError,
    ReplayMismatchError,
    load_policy_set,
    node,
    placement_request,
    replay,
    task,
)

SECRET = task("t1", tenant_id="a", classification="secret", data_region="eu")
NODE = node(
    "n1",
    region="eu",
    operator_id="o1",
    trust=0.85,
    uncertainty=0.1,
    attestation_status="affirming",
    attestation_age_s=60,
)


def _stricter(pack: Path) -> None:
    path = pack / "placement.cedar"
    path.write_text(path.read_text().replace("trust_permille < 800", "trust_permille < 900"))


def test_swap_reports_versions_and_changes_decisions(
    default_set: PolicySet, pack_copy: Path
) -> None:
    store = PolicyStore(default_set)
    req = placement_request(SECRET, NODE)
    assert store.engine.decide(req).allowed
    _stricter(pack_copy)
    swap = store.load(pack_copy)
    assert swap.old_version == default_set.version and swap.changed
    assert swap.new_version == store.version == store.current.version
    assert not store.engine.decide(req).allowed
    assert store.compiled_engine.policy_set is store.current
    assert not store.compiled_engine.decide(req).allowed


def test_invalid_set_is_refused_and_old_stays(default_set: PolicySet, pack_copy: Path) -> None:
    store = PolicyStore(default_set)
    (pack_copy / "broken.cedar").write_text('@id("b")\n@reason("b")\npermit (principal;\n')
    with pytest.raises(PolicyLoadError, match=r"broken\.cedar:1 \[b\]"):
        store.load(pack_copy)
    assert store.version == default_set.version
    assert store.engine.decide(placement_request(SECRET, NODE)).allowed


def test_replay_reproduces_stored_decision(engine: CedarEngine, default_set: PolicySet) -> None:
    req = placement_request(SECRET, NODE)
    stored_decision = json.loads(json.dumps(engine.decide(req).to_dict()))
    stored_request = json.loads(json.dumps(req.to_dict()))
    replayed = replay(stored_request, default_set.export(), stored_decision)
    assert replayed == Decision.from_dict(stored_decision)


def test_replay_of_a_deny(engine: CedarEngine, default_set: PolicySet) -> None:
    req = placement_request(SECRET, node("n2", region="us", operator_id="o", trust=0.1,
                                         uncertainty=0.5, attestation_status="none",
                                         attestation_age_s=None))  # fmt: skip
    decision = engine.decide(req)
    assert replay(req, default_set.export(), decision).policy_ids == decision.policy_ids


def test_replay_refuses_a_mismatched_version(engine: CedarEngine, pack_copy: Path) -> None:
    req = placement_request(SECRET, NODE)
    decision = engine.decide(req)
    _stricter(pack_copy)
    other = load_policy_set(pack_copy)
    with pytest.raises(PolicyVersionMismatchError) as info:
        replay(req, other.export(), decision)
    assert info.value.expected == decision.policy_set_version
    assert info.value.calculated == other.version


def test_replay_detects_a_tampered_export(engine: CedarEngine, default_set: PolicySet) -> None:
    req = placement_request(SECRET, NODE)
    decision = engine.decide(req)
    tampered = default_set.export().replace("trust_permille < 800", "trust_permille < 100")
    with pytest.raises(PolicyVersionMismatchError):
        replay(req, tampered, decision)


def test_replay_detects_a_diverging_decision(engine: CedarEngine, default_set: PolicySet) -> None:
    req = placement_request(SECRET, NODE)
    decision = engine.decide(req)
    forged = Decision(False, ("placement.secret.trust",), ("x",), (), decision.policy_set_version)
    with pytest.raises(ReplayMismatchError) as info:
        replay(req, default_set.export(), forged)
    assert info.value.replayed.allowed and not info.value.expected.allowed


def test_replica_follows_an_exported_set(default_set: PolicySet, pack_copy: Path) -> None:
    _stricter(pack_copy)
    newer = load_policy_set(pack_copy)
    replica = PolicyStore(default_set)
    swap = replica.load_export(newer.export())
    assert swap.new_version == newer.version == replica.version
    assert replica.load_export(newer.export()).changed is False
    with pytest.raises(PolicyLoadError):
        replica.load_export("{}")
    assert replica.version == newer.version
