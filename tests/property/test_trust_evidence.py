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
