"""Rule evaluation: payload keywords, header/flow conditions, flowbits, thresholds, actions."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from ids.engine import Engine, EngineConfig, EngineConfigError, parse_rule
from ids.engine.inspect import inspect_payload

ETH = Ether()
C, S = "10.0.0.1", "192.168.1.10"


def tcp(payload: bytes = b"", flags: str = "PA", reply: bool = False, **kw: object) -> bytes:
    src, dst, sp, dp = (S, C, 80, 40000) if reply else (C, S, 40000, 80)
    return bytes(ETH / IP(src=src, dst=dst, **kw) / TCP(sport=sp, dport=dp, flags=flags) / payload)


def sids(
    engine: Engine, frames: list[bytes], start: float = 1000.0, step: float = 1.0
) -> list[int]:
    out = []
    for i, f in enumerate(frames):
        out.extend(a["alert"]["signature_id"] for a in engine.process(f, start + i * step, 1))
    return out


def payload_matches(opts: str, payload: bytes) -> bool:
    rule = parse_rule(f"alert tcp any any -> any any ({opts} sid:1;)")
    return inspect_payload(rule.steps, payload)


@pytest.mark.parametrize(
    ("opts", "payload", "want"),
    [
        ('content:"abc";', b"xxabcxx", True),
        ('content:"ABC"; nocase;', b"xxabcxx", True),
        ('content:"ABC";', b"xxabcxx", False),
        ('content:"abc"; offset:2; depth:3;', b"xxabcxx", True),
        ('content:"abc"; offset:3;', b"xxabcxx", False),
        ('content:"abc"; depth:4;', b"xxabcxx", False),
        ('content:"a"; content:"c"; distance:1; within:1;', b"abc", True),
        ('content:"a"; content:"c"; distance:0; within:1;', b"abc", False),
        ('content:"a"; content:"b"; distance:1;', b"ab", False),
        ('content:"a"; content:"b"; distance:1;', b"ab ab", True),
        ('content:"x"; content:"y"; distance:0; within:1;', b"x.x.xy", True),  # backtracking
        ('content:"abc"; startswith;', b"abcd", True),
        ('content:"bcd"; startswith;', b"abcd", False),
        ('content:"bcd"; endswith;', b"abcd", True),
        ('content:"abc"; endswith;', b"abcd", False),
        ('content:"a"; content:!"b";', b"ac", True),
        ('content:"a"; content:!"b";', b"ab", False),
        ('content:"a"; content:!"b"; distance:0; within:1;', b"acb", True),
        ('content:"|00 ff|";', b"\x01\x00\xff", True),
        ('pcre:"/^ab+c$/";', b"abbbc", True),
        ('pcre:"/ABC/i";', b"xabc", True),
        ('pcre:!"/abc/";', b"xabc", False),
        ('content:"key="; pcre:"/^[0-9]+/R";', b"key=123", True),
        ('content:"key="; pcre:"/^[0-9]+/R";', b"key=x123", False),
        ("byte_test:2,=,258,0;", b"\x01\x02", True),
        ("byte_test:2,=,513,0,little;", b"\x01\x02", True),
        ("byte_test:2,>,1000,0;", b"\x01\x02", False),
        ("byte_test:3,=,123,1,string,dec;", b"x123", True),
        ("byte_test:1,&,2,0;", b"\x03", True),
        ("byte_test:1,!=,3,0;", b"\x03", False),
        ("byte_test:4,=,1,10;", b"\x00\x00\x00\x01", False),  # out of bounds
        ('byte_jump:1,0; content:"Z"; within:1;', b"\x02abZ", True),
        ('byte_jump:1,0; content:"Z"; within:1;', b"\x01abZ", False),
        ('byte_jump:1,0,from_beginning,post_offset 3; content:"Z"; within:1;', b"\x00abZ", True),
        ('byte_extract:1,0,len; content:"Z"; offset:len; depth:1;', b"\x03abZ", True),
        ('content:"a"; isdataat:2,relative;', b"abc", True),
        ('content:"a"; isdataat:!2,relative;', b"abc", False),
    ],
)
def test_payload_keywords(opts: str, payload: bytes, want: bool) -> None:
    assert payload_matches(opts, payload) is want


def test_header_addresses_ports_and_bidirectional() -> None:
    rules = "\n".join(
        [
            "alert tcp 10.0.0.0/8 any -> $HOME_NET 80 (sid:1;)",
            "alert tcp $HOME_NET 80 -> any any (sid:2;)",
            "alert tcp any any <> 10.0.0.1 any (sid:3;)",
            "alert tcp any any -> any ![80,443] (sid:4;)",
        ]
    )
    e = Engine(rules)
    assert sorted(sids(e, [tcp(b"x")])) == [1, 3]
    assert sorted(sids(e, [tcp(b"x", reply=True)])) == [2, 3, 4]


def test_flow_keywords_and_established() -> None:
    rules = "\n".join(
        [
            "alert tcp any any -> any any (flow:established,to_server; sid:1;)",
            "alert tcp any any -> any any (flow:to_client; sid:2;)",
            "alert tcp any any -> any any (flow:not_established; sid:3;)",
        ]
    )
    e = Engine(rules)
    got = [
        sids(e, [tcp(flags="S")]),
        sids(e, [tcp(flags="SA", reply=True)]),
        sids(e, [tcp(flags="A")]),
        sids(e, [tcp(b"data")]),
        sids(e, [tcp(b"resp", reply=True)]),
    ]
    assert got == [[3], [2, 3], [3], [1], [2]]


def test_flags_dsize_ttl_and_icmp() -> None:
    rules = "\n".join(
        [
            "alert tcp any any -> any any (flags:S; sid:1;)",
            "alert tcp any any -> any any (flags:S+; sid:2;)",
            "alert tcp any any -> any any (dsize:>3; sid:3;)",
            "alert ip any any -> any any (ttl:<10; sid:4;)",
            "alert icmp any any -> any any (itype:8; icode:0; icmp_id:77; sid:5;)",
            "alert icmp any any -> any any (itype:>100; sid:6;)",
        ]
    )
    e = Engine(rules)
    assert sids(e, [tcp(flags="S")]) == [1, 2]
    assert sids(e, [tcp(flags="SA", reply=True)]) == [2]
    assert sids(e, [tcp(b"four")]) == [3]
    assert sids(e, [tcp(ttl=5)]) == [4]
    ping = bytes(ETH / IP(src=C, dst=S) / ICMP(type=8, id=77))
    assert sids(e, [ping]) == [5]


def test_flowbits_setters_run_before_readers_in_one_packet() -> None:
    rules = "\n".join(
        [
            'alert tcp any any -> any any (flowbits:isset,login; content:"cmd"; sid:2;)',
            'alert tcp any any -> any any (content:"USER"; flowbits:set,login; '
            "flowbits:noalert; sid:1;)",
            'alert tcp any any -> any any (flowbits:isnotset,login; content:"cmd"; sid:3;)',
            'alert tcp any any -> any any (content:"QUIT"; flowbits:unset,login; sid:4;)',
        ]
    )
    e = Engine(rules)
    assert sids(e, [tcp(b"cmd")]) == [3]
    assert sids(e, [tcp(b"USER cmd")]) == [2]
    assert sids(e, [tcp(b"QUIT"), tcp(b"cmd")]) == [4, 3]


def test_flowbits_are_per_flow() -> None:
    e = Engine(
        'alert udp any any -> any any (content:"a"; flowbits:set,x; flowbits:noalert; sid:1;)\n'
        'alert udp any any -> any any (content:"b"; flowbits:isset,x; sid:2;)\n'
    )
    f1 = [bytes(ETH / IP(src=C, dst=S) / UDP(sport=1, dport=2) / p) for p in (b"a", b"b")]
    other = bytes(ETH / IP(src=C, dst=S) / UDP(sport=9, dport=2) / b"b")
    assert sids(e, [*f1, other]) == [2]


@pytest.mark.parametrize(
    ("option", "times", "want"),
    [
        ("threshold:type limit, track by_src, count 2, seconds 10;", [0, 1, 2, 3, 11, 12, 13], 4),
        ("threshold:type threshold, track by_src, count 3, seconds 10;", [0, 1, 2, 3, 4, 5], 2),
        ("threshold:type both, track by_dst, count 2, seconds 10;", [0, 1, 2, 3, 12, 13], 2),
        ("detection_filter:track by_src, count 2, seconds 10;", [0, 1, 2, 3, 20, 21, 22], 3),
    ],
)
def test_thresholds_use_windows_starting_at_first_match(
    option: str, times: list[int], want: int
) -> None:
    e = Engine(f'alert tcp any any -> any any (content:"x"; {option} sid:9;)')
    got = 0
    for t in times:
        got += len(e.process(tcp(b"x"), 1000.0 + t, 1))
    assert got == want


def test_threshold_tracks_sources_separately() -> None:
    e = Engine(
        'alert tcp any any -> any any (content:"x"; '
        "threshold:type limit, track by_src, count 1, seconds 60; sid:9;)"
    )
    a = bytes(ETH / IP(src="10.0.0.1", dst=S) / TCP() / b"x")
    b = bytes(ETH / IP(src="10.0.0.2", dst=S) / TCP() / b"x")
    assert sids(e, [a, a, b, b]) == [9, 9]


def test_pass_rule_stops_alerts_and_passes_flow() -> None:
    e = Engine(
        "pass tcp any any -> any 80 (sid:1;)\n"
        'alert tcp any any -> any any (content:"evil"; sid:2;)\n'
    )
    assert sids(e, [tcp(b"evil"), tcp(b"evil", reply=True)]) == []
    other = bytes(ETH / IP(src=C, dst=S) / TCP(sport=5, dport=22) / b"evil")
    assert sids(e, [other]) == [2]


def test_ips_drop_blocks_flow_and_marks_alert() -> None:
    e = Engine("drop tcp any any -> any 80 (sid:1;)", config=EngineConfig(ips=True))
    first = e.process(tcp(flags="S"), 1.0, 1)
    assert [a["alert"]["action"] for a in first] == ["blocked"]
    assert e.process(tcp(b"later"), 2.0, 1) == []
    ids_mode = Engine("drop tcp any any -> any 80 (sid:1;)")
    assert [a["alert"]["action"] for a in ids_mode.process(tcp(flags="S"), 1.0, 1)] == ["allowed"]
    assert len(ids_mode.process(tcp(b"later"), 2.0, 1)) == 1


def test_action_order_is_configurable() -> None:
    rules = (
        'alert tcp any any -> any any (content:"x"; sid:1;)\n'
        'pass tcp any any -> any any (content:"x"; sid:2;)\n'
    )
    assert sids(Engine(rules), [tcp(b"x")]) == []
    late_pass = EngineConfig(action_order=("drop", "alert", "reject", "pass"))
    assert sids(Engine(rules, config=late_pass), [tcp(b"x")]) == [1]


def test_packet_alert_max() -> None:
    rules = "\n".join(f"alert tcp any any -> any any (sid:{i};)" for i in range(1, 31))
    assert len(Engine(rules).process(tcp(), 1.0, 1)) == 15


@pytest.mark.parametrize("backend", ["hyperscan", "pyahocorasick"])
def test_prefilter_backends_agree(backend: str) -> None:
    rules = "\n".join(
        [
            'alert tcp any any -> any any (content:"Admin"; nocase; sid:1;)',
            'alert tcp any any -> any any (content:"|c0 ff ee|"; sid:2;)',
            'alert tcp any any -> any any (content:"short"; content:"longer-pattern"; sid:3;)',
            'alert tcp any any -> any any (content:"a"; content:"fp"; fast_pattern; sid:4;)',
            'alert tcp any any -> any any (pcre:"/^GET/"; sid:5;)',
        ]
    )
    e = Engine(rules, config=EngineConfig(prefilter_backend=backend))
    assert e.prefilter.backend == backend
    assert sids(e, [tcp(b"xxADMINxx")]) == [1]
    assert sids(e, [tcp(b"\xc0\xff\xee")]) == [2]
    assert sids(e, [tcp(b"short then longer-pattern")]) == [3]
    assert sids(e, [tcp(b"a fp")]) == [4]
    assert sids(e, [tcp(b"GET /")]) == [5]


def test_rule_errors_are_kept_and_do_not_stop_loading() -> None:
    e = Engine(
        'alert tcp any any -> any any (content:"a"; sid:1;)\n'
        "alert tcp any any -> any any (bogus; sid:2;)\n"
    )
    assert [r.sid for r in e.rules] == [1]
    assert [(err.sid, err.line) for err in e.rule_errors] == [(2, 2)]


def test_unknown_link_and_garbage_never_raise() -> None:
    e = Engine('alert ip any any -> any any (content:"a"; sid:1;)')
    assert e.process(b"", 1.0, 1) == []
    assert e.process(b"\xff" * 100, 1.0, 1) == []
    assert e.process(b"\x45" * 100, 1.0, 101) == []
    assert e.decoder.events


def test_live_clock_is_used_without_timestamp() -> None:
    e = Engine("alert tcp any any -> any any (sid:1;)", clock=lambda: 1_700_000_000.5)
    [alert] = e.process(tcp())
    assert alert["timestamp"] == "2023-11-14T22:13:20.500000+0000"


@pytest.mark.parametrize(
    "cfg",
    [
        EngineConfig(midstream_policy="explode"),
        EngineConfig(action_order=("alert", "alert")),
        EngineConfig(max_flows=0),
        EngineConfig(prefilter_backend="regex"),
    ],
)
def test_bad_config_raises_config_error(cfg: EngineConfig) -> None:
    with pytest.raises(EngineConfigError):
        Engine("", config=cfg)


def test_engine_stats() -> None:
    e = Engine('alert tcp any any -> any any (content:"x"; sid:1;)')
    e.process(tcp(b"x"), 1.0, 1)
    e.process(b"\x00", 2.0, 1)
    st = e.stats()
    assert (st["packets"], st["alerts"], st["flows_active"], st["rules_loaded"]) == (2, 1, 1, 1)
    assert st["decode_events"] == {"ethernet.pkt_too_small": 1}


def test_drop_records_in_ips_mode() -> None:
    cfg = EngineConfig(ips=True, log_drops=True)
    e = Engine("drop tcp any any -> any 80 (noalert; sid:1;)", config=cfg)
    first = e.process(tcp(flags="S"), 1.0, 1)
    assert [(r["event_type"], r["drop"]["reason"], r["alert"]["signature_id"]) for r in first] == [
        ("drop", "rules", 1)
    ]
    assert first[0]["drop"]["syn"] is True
    later = e.process(tcp(b"x"), 2.0, 1)
    assert [(r["event_type"], r["drop"]["reason"]) for r in later] == [("drop", "flow drop")]
    assert e.alerts_total == 0
