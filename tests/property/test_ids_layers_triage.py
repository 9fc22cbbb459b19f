"""Hypothesis: the triage state machine agrees with a naive reference model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ids.layers import InvalidTriageTransitionError, TriageRecord, transition

REFERENCE = {
    "new": {"acknowledged", "escalated", "closed"},
    "acknowledged": {"escalated", "closed"},
    "escalated": {"closed"},
    "closed": {"acknowledged"},
}

steps = st.lists(
    st.tuples(
        st.sampled_from(["new", "acknowledged", "escalated", "closed", "bogus"]),
        st.sampled_from(["", "reason"]),
        st.sampled_from(["alice", ""]),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_state_machine_matches_reference(moves: list[tuple[str, str, str]]) -> None:
    record = TriageRecord("a")
    state = "new"
    accepted = 0
    for i, (target, note, actor) in enumerate(moves):
        allowed = (
            target in REFERENCE[state]
            and bool(actor)
            and (bool(note) or (target != "closed" and state != "closed"))
        )
        try:
            record = transition(record, target, actor, float(i), note)
        except InvalidTriageTransitionError as err:
            assert not allowed, (state, target, note, actor)
            assert err.from_state == state
            continue
        assert allowed, (state, target, note, actor)
        state = target
        accepted += 1
        assert record.state == state
    assert len(record.history) == accepted
