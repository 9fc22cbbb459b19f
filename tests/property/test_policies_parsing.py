"""Fuzz the parsers: outside input raises only the package's errors, never crashes or allows."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policies import (
    CedarEngine,
    PolicyLoadError,
    PolicyRequestError,
    Request,
    default_policy_dir,
    load_default_policy_set,
    policy_set_from_export,
    policy_set_from_sources,
)
from policies._source import split_policies

SCHEMA = (default_policy_dir() / "cntrust.cedarschema.json").read_text()
ENGINE = CedarEngine(load_default_policy_set(), cache_size=0)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
CEDARISH = st.text(
    alphabet=st.sampled_from(
        list('@id("x")reason permit forbid(principal,action,resource);{}when unless"\\/\n =<&|!.')
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300) | CEDARISH)
def test_split_policies_never_raises(text: str) -> None:
    chunks = split_policies(text)
    assert all(c.text.strip() and c.line >= 1 for c in chunks)


@settings(max_examples=100, deadline=None)
@given(text=CEDARISH)
def test_loading_random_text_raises_only_load_errors(text: str) -> None:
    try:
        policy_set_from_sources(SCHEMA, [("fuzz.cedar", text)])
    except PolicyLoadError as exc:
        assert exc.problems


@settings(max_examples=100, deadline=None)
@given(doc=JSON)
def test_export_parser_raises_only_load_errors(doc: Any) -> None:
    try:
        policy_set_from_export(json.dumps(doc))
    except PolicyLoadError:
        return


def _request_shaped() -> st.SearchStrategy[dict[str, Any]]:
    uid = st.fixed_dictionaries(
        {
            "type": st.sampled_from(["Tenant", "Task", "Node", "Admin", "Nope", ""]),
            "id": st.text(max_size=4),
        }
    )
    entity = st.fixed_dictionaries(
        {"uid": uid, "attrs": st.dictionaries(st.text(max_size=6), JSON, max_size=4)}
    )
    return st.fixed_dictionaries(
        {
            "principal": uid,
            "action": st.sampled_from(["read_task", "place_task", "submit_task", "x", ""]),
            "resource": uid,
            "context": st.dictionaries(st.text(max_size=4), JSON, max_size=2),
            "entities": st.lists(entity, max_size=3),
        }
    )


@settings(max_examples=300, deadline=None)
@given(data=JSON | _request_shaped())
def test_random_requests_never_crash_and_never_allow(data: Any) -> None:
    try:
        request = Request.from_dict(data)
    except PolicyRequestError:
        return
    decision = ENGINE.decide(request)
    # No random request carries well-formed principal, resource and entities for a permit.
    assert not decision.allowed
    assert decision.reasons
