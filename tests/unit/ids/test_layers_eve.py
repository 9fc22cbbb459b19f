"""EVE alert construction, Community ID, keys and export."""

from __future__ import annotations

import io
import json

import pytest

from ids.layers import AlertFormatError, alert_key, community_id, make_alert, write_eve_lines
from ids.layers.eve import eve_timestamp, parse_eve_timestamp, severity_of, ts_of

communityid = pytest.importorskip("communityid", reason="communityid package not installed")


@pytest.mark.parametrize(
    ("proto", "src", "dst", "sport", "dport"),
    [
        (6, "128.232.110.120", "66.35.250.204", 34855, 80),
        (6, "66.35.250.204", "128.232.110.120", 80, 34855),
        (17, "10.0.0.1", "10.0.0.2", 53, 53),
        (17, "2001:db8::1", "2001:db8::2", 5353, 53),
        (6, "10.0.0.2", "10.0.0.1", 443, 443),
        (1, "192.168.0.89", "192.168.0.1", 8, 0),
        (1, "192.168.0.1", "192.168.0.89", 0, 0),
        (58, "fe80::1", "fe80::2", 135, 0),
        (1, "10.0.0.1", "10.0.0.2", 3, 1),
    ],
)
def test_community_id_matches_reference(
    proto: int, src: str, dst: str, sport: int, dport: int
) -> None:
    cid = communityid.CommunityID()
    tpl = communityid.FlowTuple(proto, src, dst, sport, dport)
    assert community_id(proto, src, dst, sport, dport) == cid.calc(tpl)


def test_community_id_spec_vector() -> None:
    # From the Community ID spec README (TCP, seed 0).
    got = community_id(6, "128.232.110.120", "66.35.250.204", 34855, 80)
    assert got == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="


def test_community_id_rejects_non_ip() -> None:
    with pytest.raises(AlertFormatError):
        community_id(6, "not-an-ip", "10.0.0.1", 1, 2)


def _alert(**kw: object) -> dict:
    base: dict = dict(
        ts=1_767_225_600.25,
        src_ip="203.0.113.5",
        dest_ip="10.0.0.80",
        proto=6,
        src_port=40000,
        dest_port=443,
        signature_id=1_990_001,
        signature="sig",
        category="Detection of a Network Scan",
        severity=2,
        layer="perimeter",
        node_id="node-01",
        detection="ids.perimeter.syn_scan",
        reasons=["x >= y"],
    )
    base.update(kw)
    return make_alert(**base)


def test_make_alert_has_suricata_shape() -> None:
    alert = _alert()
    assert alert["event_type"] == "alert"
    assert alert["timestamp"] == "2026-01-01T00:00:00.250000+0000"
    assert alert["proto"] == "TCP"
    assert alert["community_id"].startswith("1:")
    assert set(alert["alert"]) == {
        "action",
        "gid",
        "signature_id",
        "rev",
        "signature",
        "category",
        "severity",
    }
    assert alert["cntrust"] == {
        "layer": "perimeter",
        "node_id": "node-01",
        "detection": "ids.perimeter.syn_scan",
        "reasons": ["x >= y"],
    }
    assert isinstance(alert["flow_id"], int) and alert["flow_id"] > 0


def test_make_alert_is_deterministic_and_key_changes_with_content() -> None:
    assert _alert() == _alert()
    assert alert_key(_alert()) == alert_key(_alert())
    assert alert_key(_alert()) != alert_key(_alert(dest_port=80))


def test_timestamp_round_trip() -> None:
    ts = 1_767_225_600.123456
    assert parse_eve_timestamp(eve_timestamp(ts)) == pytest.approx(ts, abs=1e-6)
    assert ts_of(_alert(ts=ts)) == pytest.approx(ts, abs=1e-6)
    with pytest.raises(AlertFormatError):
        parse_eve_timestamp("yesterday")


def test_field_accessors_reject_bad_shapes() -> None:
    with pytest.raises(AlertFormatError):
        severity_of({"alert": {"severity": "high"}})
    with pytest.raises(AlertFormatError):
        ts_of({"timestamp": 5})


def test_write_eve_lines_one_json_object_per_line() -> None:
    out = io.StringIO()
    n = write_eve_lines([_alert(), _alert(dest_port=80)], out)
    lines = out.getvalue().splitlines()
    assert n == 2 and len(lines) == 2
    assert [json.loads(line)["dest_port"] for line in lines] == [443, 80]


def test_timestamp_without_offset_rejected() -> None:
    with pytest.raises(AlertFormatError):
        parse_eve_timestamp("2026-01-01T00:00:00.000000")
    assert parse_eve_timestamp("2026-01-01T00:00:00.000000+0000") == 1_767_225_600.0
