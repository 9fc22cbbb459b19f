"""The node's own signature over its result: in the record, checked offline by verify_bundle
at the ``node_signature`` step, each failure with its reason."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit_chain import (
    BundleVerificationError,
    CheckpointPublisher,
    MemoryTileStore,
    NodeResultVerificationError,
    TiledLog,
    build_bundle,
    node_key_id,
    parse_bundle,
    sign_statement,
    statement_for,
    usage_counters,
    verify_bundle,
    verify_node_result,
)
from audit_chain.predicates import NodeResultSignature, TaskExecution

from .helpers import seeded, sign_result, task_execution


def _bundle_of(execution: TaskExecution) -> tuple[bytes, str]:
    signer = seeded("log")
    log = TiledLog(MemoryTileStore())
    entry = sign_statement(statement_for(execution), signer).canonical_bytes()
    log.append_batch([entry])
    note = CheckpointPublisher(log, signer).publish()
    return build_bundle(log, 0, note, signer.verifier).to_bytes(), signer.vkey


def _step(execution: TaskExecution, **kwargs: Any) -> tuple[str, str]:
    data, vkey = _bundle_of(execution)
    with pytest.raises(BundleVerificationError) as info:
        verify_bundle(data, vkey, require_anchor=False, **kwargs)
    return info.value.step, info.value.reason


def _with(**changes: object) -> TaskExecution:
    good = task_execution(3)
    assert good.node_result is not None
    return dataclasses.replace(good, node_result=dataclasses.replace(good.node_result, **changes))


def test_a_signed_record_verifies_and_the_signature_is_checked() -> None:
    data, vkey = _bundle_of(task_execution(3))
    assert verify_bundle(data, vkey, require_anchor=False, require_node_signature=True) is None
    verify_node_result(task_execution(3), require=True)


def test_flipped_node_signature_is_refused_at_node_signature() -> None:
    good = task_execution(3).node_result
    assert good is not None
    sig = bytes([good.sig[0] ^ 1]) + good.sig[1:]
    assert _step(_with(sig=sig)) == ("node_signature", "bad_signature")


def test_signature_by_another_node_key_is_refused() -> None:
    other = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"other").digest())
    fields = {f.name: getattr(task_execution(3), f.name) for f in dataclasses.fields(TaskExecution)}
    forged = sign_result(fields, attempt=0, key=other)
    good = task_execution(3).node_result
    assert good is not None
    # the other key's signature, presented under the node's key
    assert _step(_with(sig=forged.sig)) == ("node_signature", "bad_signature")


def test_key_id_not_of_the_key_is_refused() -> None:
    assert _step(_with(keyid="00" * 16)) == ("node_signature", "key_id_mismatch")


@pytest.mark.parametrize(
    "field",
    [{"exit_code": 1}, {"output_digest": "sha256:" + "0" * 64}, {"task_id": "another-task"}],
)
def test_record_fields_other_than_signed_are_refused(field: dict[str, object]) -> None:
    changed = dataclasses.replace(task_execution(3), **field)  # type: ignore[arg-type]
    assert _step(changed) == ("node_signature", "bad_signature")


@pytest.mark.parametrize("change", [{"attempt": 1}, {"started_ms": 1}, {"finished_ms": 2}])
def test_changed_attempt_or_node_times_are_refused(change: dict[str, int]) -> None:
    assert _step(_with(**change)) == ("node_signature", "bad_signature")


def test_changed_usage_is_refused() -> None:
    changed = dataclasses.replace(task_execution(3), resource_usage=(("cpuMs", 1),))
    assert _step(changed) == ("node_signature", "bad_signature")


def test_unsigned_record_passes_unless_required() -> None:
    unsigned = task_execution(3, node_result=None)
    data, vkey = _bundle_of(unsigned)
    assert verify_bundle(data, vkey, require_anchor=False) is None
    assert _step(unsigned, require_node_signature=True) == ("node_signature", "missing")


def test_signed_record_without_exit_code_is_incomplete() -> None:
    signed = task_execution(3)
    with pytest.raises(NodeResultVerificationError) as info:
        verify_node_result(dataclasses.replace(signed, exit_code=None))
    assert info.value.reason == "incomplete"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("publicKey", base64.b64encode(b"\x01" * 31).decode()),
        ("sig", base64.b64encode(b"\x01" * 63).decode()),
        ("keyid", "not-hex"),
        ("attempt", -1),
        ("startedMs", 1.5),
    ],
)
def test_malformed_node_result_is_refused_when_parsing(key: str, value: object) -> None:
    obj = task_execution(3).to_predicate()["nodeResult"]
    obj[key] = value
    from audit_chain.errors import MalformedStatementError

    with pytest.raises(MalformedStatementError):
        NodeResultSignature.from_json(obj)


def test_key_id_is_the_sha256_prefix_of_the_raw_key() -> None:
    key = b"\x07" * 32
    assert node_key_id(key) == hashlib.sha256(key).hexdigest()[:32]


def test_usage_counters_scale_and_drop_bad_values() -> None:
    usage = {"wall_s": 1.5, "cpu_s": 0.25, "max_rss_kb": 2, "bad": float("nan"), "neg": -1}
    assert usage_counters(usage) == (("cpuMs", 250), ("maxRssBytes", 2048), ("wallMs", 1500))


def test_v1_bundle_with_base64_payload_and_proof_lists_still_parses() -> None:
    data, vkey = _bundle_of(task_execution(3))
    obj = json.loads(data)
    bundle = parse_bundle(data)
    obj["mediaType"] = "application/vnd.cntrust.proof-bundle.v1+json"
    obj["record"] = bundle.envelope.to_json()
    obj["inclusionProof"] = [base64.b64encode(h).decode() for h in bundle.inclusion_proof]
    v1 = json.dumps(obj).encode()
    assert verify_bundle(v1, vkey, require_anchor=False) is None
    assert parse_bundle(v1).entry == bundle.entry


def test_cli_names_the_node_signature_step(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from scheduler.cli.audit_cmd import app

    good = task_execution(3).node_result
    assert good is not None
    data, vkey = _bundle_of(_with(sig=bytes([good.sig[0] ^ 1]) + good.sig[1:]))
    path = tmp_path / "bundle.json"
    path.write_bytes(data)
    result = CliRunner().invoke(app, ["verify", str(path), "--log-key", vkey, "--allow-unanchored"])
    assert result.exit_code == 1
    assert "FAILED at step node_signature" in result.output


IDENTITY_POINT = bytes([1]) + bytes(31)  # the Ed25519 neutral element, encoded


@pytest.mark.parametrize(
    ("key", "sig"),
    [
        # R = identity, S = 0 under the identity key: OpenSSL accepts it for every message
        (IDENTITY_POINT, IDENTITY_POINT + bytes(32)),
        (bytes(32), bytes(64)),  # a small-order key and an all-zero signature
        (IDENTITY_POINT, IDENTITY_POINT + bytes(31)),  # 63 bytes
    ],
    ids=["identity-forgery", "zero", "short"],
)
def test_signatures_that_bind_nobody_are_refused(key: bytes, sig: bytes) -> None:
    from audit_chain.node_result import verify_node_signature

    for message in (b"", b"any result at all"):
        with pytest.raises(NodeResultVerificationError) as caught:
            verify_node_signature(key, sig, message)
        assert caught.value.reason == "bad_signature"


def test_a_key_of_the_wrong_length_is_a_bad_key() -> None:
    from audit_chain.node_result import verify_node_signature

    with pytest.raises(NodeResultVerificationError) as caught:
        verify_node_signature(bytes(31), bytes(64), b"m")
    assert caught.value.reason == "bad_key"
