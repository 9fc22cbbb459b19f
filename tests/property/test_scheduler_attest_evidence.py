"""Fuzz the evidence endpoint's parsing: any JSON object gives a result or a specific
refusal (EvidenceRefused with an attestation-* problem type), never another exception."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.attestation import EvidenceRefused, parse_evidence

_text = st.one_of(
    st.text(max_size=80),
    st.binary(min_size=0, max_size=80).map(lambda b: base64.urlsafe_b64encode(b).decode()),
)
_value = st.one_of(
    st.none(), st.integers(), st.booleans(), _text, st.lists(st.integers(), max_size=3)
)


@st.composite
def bodies(draw):  # type: ignore[no-untyped-def]
    body = {
        "type": draw(st.sampled_from(["eat", "tpm-quote", "x", ""])),
        "nonce": draw(_text),
    }
    for name in ("eat", "quote", "signature", "measurement_log"):
        if draw(st.booleans()):
            body[name] = draw(_value)
    return body


@settings(max_examples=400, deadline=None)
@given(bodies())
def test_parse_evidence_refuses_specifically(body):  # type: ignore[no-untyped-def]
    try:
        evidence = parse_evidence(body)
    except EvidenceRefused as exc:
        assert exc.type_slug.startswith("attestation-")
        assert exc.status in (413, 422)
        return
    assert evidence.type in ("eat", "tpm-quote") and 16 <= len(evidence.nonce) <= 64


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.binary(min_size=16, max_size=64))
def test_any_eat_text_parses_or_is_refused(token, nonce):  # type: ignore[no-untyped-def]
    body = {"type": "eat", "nonce": base64.urlsafe_b64encode(nonce).decode(), "eat": token}
    try:
        assert parse_evidence(body).eat == token
    except EvidenceRefused as exc:
        assert exc.type_slug == "attestation-evidence-malformed"
