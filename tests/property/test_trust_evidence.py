"""Fuzzing Evidence construction: any field values give an Evidence or an EvidenceError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trust import Evidence, EvidenceError, EvidenceKind

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=300),
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=400)
@given(
    anything | st.text(min_size=1, max_size=20),
    anything | st.sampled_from([k.value for k in EvidenceKind]).map(EvidenceKind),
    anything | st.text(min_size=1, max_size=20),
    anything | st.floats(min_value=0, max_value=2e9),
    anything | st.text(min_size=1, max_size=20),
    anything | st.integers(min_value=1, max_value=3),
    anything | st.floats(min_value=-1, max_value=1),
    anything | st.text(min_size=1, max_size=20),
    anything,
)
def test_construct_or_evidence_error(
    eid: object,
    kind: object,
    node: object,
    at: object,
    source: object,
    severity: object,
    rating: object,
    rater: object,
    detail: object,
) -> None:
    try:
        ev = Evidence(eid, kind, node, at, source, severity, rating, rater, detail)  # type: ignore[arg-type]
    except EvidenceError as exc:
        assert exc.field
    else:
        assert isinstance(ev.kind, EvidenceKind) and isinstance(ev.node_id, str)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=15,
)
eve_like = st.fixed_dictionaries(
    {},
    optional={
        "event_type": st.sampled_from(["alert", "flow"]) | json_values,
        "timestamp": st.sampled_from(["2027-01-15T08:00:00Z", "bad"]) | json_values,
        "alert": st.fixed_dictionaries(
            {}, optional={"severity": json_values, "signature_id": json_values}
        )
        | json_values,
        "community_id": json_values,
    },
)
ear_like = st.fixed_dictionaries(
    {},
    optional={
        "iat": json_values,
        "eat_nonce": json_values,
        "submods": st.dictionaries(
            st.text(max_size=8),
            st.fixed_dictionaries(
                {}, optional={"ear.status": st.sampled_from(["affirming", "none"]) | json_values}
            )
            | json_values,
            max_size=3,
        )
        | json_values,
    },
)


@settings(max_examples=300)
@given(eve_like | json_values)
def test_eve_adapter_never_crashes(doc: object) -> None:
    from trust import from_eve_alert

    try:
        ev = from_eve_alert(doc, node_id="n1", sensor="s")  # type: ignore[arg-type]
    except EvidenceError as exc:
        assert exc.field
    else:
        assert ev.kind is EvidenceKind.IDS_ALERT


@settings(max_examples=300)
@given(ear_like | json_values)
def test_ear_adapter_never_crashes(doc: object) -> None:
    from trust import from_ear

    try:
        ev = from_ear(doc, node_id="n1", verifier="v")  # type: ignore[arg-type]
    except EvidenceError as exc:
        assert exc.field
    else:
        assert ev.kind.value.startswith("trust.evidence.attestation_")
