"""Fuzz the alert batch parser: any bytes and any JSON give a result or a problem, never a
crash, and what it accepts can be aggregated and rendered back as EVE."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ids.layers import aggregation_key
from scheduler.alerts import (
    MalformedJson,
    TooManyAlerts,
    check_alert,
    dedup_key,
    parse_alert_batch,
)
from scheduler.errors import InvalidRequest
from tests.unit.scheduler.alerts_helpers import alert

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def _mutated(value: object, key: str, inner: bool) -> dict:
    record = alert()
    (record["alert"] if inner else record)[key] = value
    return record


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_parsed_or_refused(raw: bytes) -> None:
    with contextlib.suppress(MalformedJson, InvalidRequest, TooManyAlerts):
        parse_alert_batch(raw, 1000)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        [
            "timestamp",
            "src_ip",
            "dest_ip",
            "src_port",
            "dest_port",
            "proto",
            "event_type",
            "signature_id",
            "signature",
            "severity",
            "category",
            "gid",
            "cntrust",
        ]
    ),
    _json,
)
def test_any_field_value_is_accepted_or_named(key: str, value: object) -> None:
    inner = key in ("signature_id", "signature", "severity", "category", "gid")
    record = _mutated(value, key, inner)
    raw = json.dumps([alert(), record]).encode()
    try:
        batch = parse_alert_batch(raw, 1000)
    except InvalidRequest as exc:
        assert exc.extra["errors"][0]["index"] == 1
        return
    check_alert(batch[1])
    assert len(dedup_key("by_both", aggregation_key(batch[1]))) == 64
