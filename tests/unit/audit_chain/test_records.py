"""DSSE envelopes, in-toto statements, predicates and salted commitments."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from datetime import UTC, datetime

import pytest

from audit_chain.commitment import commit, new_salt, verify_commitment
from audit_chain.dsse import (
    INTOTO_PAYLOAD_TYPE,
    Envelope,
    EnvelopeSignature,
    pae,
    parse_envelope,
    sign_envelope,
    verify_envelope,
)
from audit_chain.errors import (
    CommitmentMismatchError,
    EnvelopeVerificationError,
    InputTooLargeError,
    MalformedEnvelopeError,
    MalformedStatementError,
)
from audit_chain.predicates import ResponseAction, TaskExecution
from audit_chain.statement import (
    open_statement,
    parse_statement,
    sign_statement,
    statement_for,
)

from .helpers import digest, seeded, task_execution


def test_pae_matches_the_dsse_spec_example() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_envelope_round_trip_and_canonical_encoding() -> None:
    signer = seeded("log")
    env = sign_envelope(b'{"a":1}', INTOTO_PAYLOAD_TYPE, signer)
    data = env.canonical_bytes()
    assert parse_envelope(data) == env
    verify_envelope(parse_envelope(data), signer.verifier)
    assert list(json.loads(data)) == ["payload", "payloadType", "signatures"]
    spaced = json.dumps(json.loads(data)).encode()
    with pytest.raises(MalformedEnvelopeError) as info:
        parse_envelope(spaced)
    assert info.value.reason == "non_canonical"


def test_canonical_bytes_equal_the_json_encoders() -> None:
    # canonical_bytes writes the envelope out by hand; it must stay byte-identical to the
    # sorted, compact, ASCII json.dumps the log was first written with - for any strings
    # (quotes, backslashes, control characters, non-ASCII, astral), payloads and signatures
    rng = random.Random(5)
    alphabet = ['"', "\\", "/", "\n", "\x00", "\x1f", "\x7f", "é", "\u2028", "😀", "a", "+", " "]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))

    for n in range(300):
        env = Envelope(
            rng.randbytes(n * 7),
            text(),
            tuple(
                EnvelopeSignature(text(), rng.randbytes(rng.choice([0, 1, 64])))
                for _ in range(1 + n % 3)
            ),
        )
        expected = json.dumps(
            env.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        )
        assert env.canonical_bytes() == expected.encode()
    signer = seeded("log")
    env = sign_envelope(b'{"a":"\xc3\xa9"}', INTOTO_PAYLOAD_TYPE, signer)
    expected = json.dumps(env.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert env.canonical_bytes() == expected.encode()


@pytest.mark.parametrize(
    "obj",
    [
        [],
        {"payload": "", "payloadType": "t"},
        {"payload": "!!", "payloadType": "t", "signatures": [{"keyid": "k", "sig": "AA=="}]},
        {"payload": "", "payloadType": "t", "signatures": []},
        {"payload": "", "payloadType": "t", "signatures": [{"keyid": 1, "sig": "AA=="}]},
        {"payload": "", "payloadType": "t", "signatures": [{"sig": "AA=="}]},
        {"payload": "", "payloadType": "", "signatures": [{"keyid": "k", "sig": "AA=="}]},
        {"payload": "", "payloadType": "t", "signatures": [{"keyid": "k", "sig": "AA=="}], "x": 1},
    ],
)
def test_malformed_envelopes_are_refused(obj: object) -> None:
    data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(MalformedEnvelopeError):
        parse_envelope(data)


def test_envelope_size_is_checked_first() -> None:
    with pytest.raises(InputTooLargeError):
        parse_envelope(b"{" * 70_000)


def test_envelope_signature_checks() -> None:
    signer, other = seeded("log"), seeded("other")
    env = sign_envelope(b"payload", INTOTO_PAYLOAD_TYPE, signer)
    with pytest.raises(EnvelopeVerificationError) as info:
        verify_envelope(env, other.verifier)
    assert info.value.reason == "unknown_key"
    tampered = dataclasses.replace(env, payload=b"payloaD")
    with pytest.raises(EnvelopeVerificationError) as info:
        verify_envelope(tampered, signer.verifier)
    assert info.value.reason == "bad_signature"
    # A forged second signature under the right key id is refused even beside a good one.
    forged = Envelope(env.payload, env.payload_type, (*env.signatures, EnvelopeSignature(
        env.signatures[0].keyid, b"\x00" * 64)))  # fmt: skip
    with pytest.raises(EnvelopeVerificationError):
        verify_envelope(forged, signer.verifier)


def test_task_statement_round_trip() -> None:
    signer = seeded("log")
    predicate = task_execution(3)
    env = sign_statement(statement_for(predicate), signer)
    statement = open_statement(parse_envelope(env.canonical_bytes()), signer.verifier)
    assert statement.predicate == predicate
    assert statement.subject_name == "task/" + predicate.task_id
    assert statement.subject_sha256 == predicate.output_digest.removeprefix("sha256:")  # type: ignore[union-attr]
    body = json.loads(env.payload)
    assert body["_type"] == "https://in-toto.io/Statement/v1"
    assert body["predicateType"] == "https://cntrust.dev/task-execution/v1"
    assert "Acme" not in env.payload.decode()  # tenant only as a commitment


def test_minimal_task_statement_round_trips() -> None:
    minimal = TaskExecution(
        task_id="t1",
        tenant=commit("tenant", b"\x00" * 32),
        node_spiffe_id="spiffe://d/n",
        command_digest=digest("c"),
        started_on=datetime(2026, 1, 1, tzinfo=UTC),
        finished_on=datetime(2026, 1, 1, tzinfo=UTC),
        outcome="failed",
    )
    assert parse_statement(statement_for(minimal).to_bytes()).predicate == minimal


def test_response_action_round_trip() -> None:
    action = ResponseAction(
        action_id="ra-1",
        action="quarantine",
        target_kind="node",
        target_id="spiffe://cntrust.test/operator/op-1/node/gpu-042",
        target_digest=digest("cert"),
        decided_on=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        actor="spiffe://cntrust.test/scheduler",
        reasons=("trust.score.below_threshold", "ids.network.lateral_movement"),
        evidence_ids=("alert-17",),
        trust_score_permille=212,
        detail=commit("operator note", b"\x01" * 32),
    )
    statement = parse_statement(statement_for(action).to_bytes())
    assert statement.predicate == action
    assert statement.predicate_type == "https://cntrust.dev/response-action/v1"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tenant", "Acme Research GmbH"),  # plaintext where a commitment is required
        ("command_digest", "sha256:XYZ"),
        ("node_spiffe_id", "https://not-spiffe"),
        ("outcome", "exploded"),
        ("trust_score_permille", 1001),
        ("trace_id", "not-hex"),
        ("attestation_status", "great"),
        ("resource_usage", (("b", 1), ("a", 2))),
        ("resource_usage", (("cpuMs", -1),)),
        ("free_text", "free text in clear"),
        ("started_on", datetime(2026, 11, 28, tzinfo=UTC)),  # after finished_on
    ],
)
def test_invalid_task_fields_are_refused(field: str, value: object) -> None:
    with pytest.raises(MalformedStatementError):
        task_execution(0, **{field: value})


def _payload(mutate: object) -> bytes:
    body = json.loads(statement_for(task_execution(1)).to_bytes())
    assert callable(mutate)
    mutate(body)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(_type="https://in-toto.io/Statement/v0.1"),
        lambda b: b.update(predicateType="https://example.com/other"),
        lambda b: b["predicate"].update(secret="s3cr3t"),  # unknown member
        lambda b: b["predicate"].update(exitCode=1.5),  # floats refused
        lambda b: b["predicate"].update(exitCode=True),
        lambda b: b["predicate"].pop("tenant"),
        lambda b: b["predicate"].update(startedOn="2026-11-27 12:00:01"),
        lambda b: b["predicate"]["placement"].update(trustScorePermille="874"),
        lambda b: b["subject"][0]["digest"].update(sha256="00" * 32),  # subject mismatch
        lambda b: b["subject"].append(b["subject"][0]),
        lambda b: b["predicate"]["nodeResult"].update(sig="***"),
    ],
)
def test_malformed_statements_are_refused(mutate: object) -> None:
    with pytest.raises(MalformedStatementError):
        parse_statement(_payload(mutate))


def test_non_canonical_statement_is_refused() -> None:
    data = statement_for(task_execution(1)).to_bytes()
    with pytest.raises(MalformedStatementError):
        parse_statement(json.dumps(json.loads(data), indent=1).encode())
    with pytest.raises(MalformedStatementError):
        parse_statement(b"not json")
    with pytest.raises(InputTooLargeError):
        parse_statement(b" " * 40_000)


def test_wrong_payload_type_is_refused() -> None:
    signer = seeded("log")
    env = sign_envelope(statement_for(task_execution(1)).to_bytes(), "text/plain", signer)
    with pytest.raises(MalformedStatementError):
        open_statement(env, signer.verifier)


def test_commitments_open_and_survive_erasure() -> None:
    salt = new_salt(lambda n: b"\x07" * n)
    c = commit("Acme Research GmbH", salt)
    assert c == "sha256:" + hashlib.sha256(salt + b"Acme Research GmbH").hexdigest()
    verify_commitment(c, "Acme Research GmbH", salt)
    with pytest.raises(CommitmentMismatchError) as info:
        verify_commitment(c, "Other Corp", salt)
    assert info.value.expected == c
    with pytest.raises(MalformedStatementError):
        commit("x", b"short")
    # Erasure: the record keeps only the commitment; its bytes (and so its proofs) are
    # unchanged when the plaintext and salt are deleted elsewhere.
    record = statement_for(task_execution(2, tenant=c)).to_bytes()
    assert b"Acme" not in record and c.encode() in record
