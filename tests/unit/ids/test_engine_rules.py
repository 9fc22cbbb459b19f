"""Rule parser: header groups and vars, options, errors with sid and line, unsupported."""

from __future__ import annotations

import ipaddress

import pytest

from ids.engine import RuleParseError, UnsupportedRuleError, parse_rule, parse_rules
from ids.engine.rules.addresses import (
    GroupError,
    match_address,
    match_port,
    parse_address,
    parse_ports,
)
from ids.engine.rules.model import ByteJump, ByteTest, Content, Pcre


def addr(text: str, ip: str, variables: dict[str, str] | None = None) -> bool:
    from ids.engine.rules.addresses import DEFAULT_ADDRESS_VARS

    node = parse_address(text, {**DEFAULT_ADDRESS_VARS, **(variables or {})})
    return node is None or match_address(node, ipaddress.ip_address(ip).packed)


def port(text: str, p: int) -> bool:
    node = parse_ports(text, {"HTTP_PORTS": "[80,8080]"})
    return node is None or match_port(node, p)


@pytest.mark.parametrize(
    ("text", "ip", "want"),
    [
        ("any", "1.2.3.4", True),
        ("10.0.0.0/8", "10.200.1.1", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("!10.0.0.0/8", "11.0.0.1", True),
        ("[10.0.0.0/8,192.168.1.1]", "192.168.1.1", True),
        ("[10.0.0.0/8,!10.1.0.0/16]", "10.1.2.3", False),
        ("[10.0.0.0/8,!10.1.0.0/16]", "10.2.2.3", True),
        ("![1.1.1.1,2.2.2.2]", "2.2.2.2", False),
        ("$HOME_NET", "192.168.5.5", True),
        ("$EXTERNAL_NET", "192.168.5.5", False),
        ("$EXTERNAL_NET", "8.8.8.8", True),
        ("2001:db8::/32", "2001:db8::7", True),
        ("2001:db8::/32", "10.0.0.1", False),
        ("[any,!10.0.0.1]", "10.0.0.1", False),
    ],
)
def test_address_groups(text: str, ip: str, want: bool) -> None:
    assert addr(text, ip) is want


def test_configurable_vars() -> None:
    assert addr("$HOME_NET", "172.20.0.1", {"HOME_NET": "[172.20.0.0/16]"})
    assert not addr("$HOME_NET", "192.168.0.1", {"HOME_NET": "[172.20.0.0/16]"})


@pytest.mark.parametrize(
    ("text", "p", "want"),
    [
        ("any", 9, True),
        ("80", 80, True),
        ("80", 81, False),
        ("1024:", 65535, True),
        (":1023", 1024, False),
        ("[80,443,1000:2000]", 1500, True),
        ("!80", 80, False),
        ("[1:100,!50]", 50, False),
        ("$HTTP_PORTS", 8080, True),
    ],
)
def test_port_groups(text: str, p: int, want: bool) -> None:
    assert port(text, p) is want


@pytest.mark.parametrize("bad", ["[1.1.1.1", "300.1.1.1", "!any", "$NOPE", "[1.1.1.1,,2.2.2.2]"])
def test_bad_address_groups(bad: str) -> None:
    with pytest.raises(GroupError):
        parse_address(bad, {})


@pytest.mark.parametrize("bad", ["70000", "90:80", "abc", "[80"])
def test_bad_port_groups(bad: str) -> None:
    with pytest.raises(GroupError):
        parse_ports(bad, {})


def test_full_rule_options() -> None:
    r = parse_rule(
        'drop tcp $HOME_NET any -> $EXTERNAL_NET [80,443] (msg:"x \\"q\\"; y"; '
        'flow:established,to_server; content:"GET"; offset:0; depth:3; content:"|0d 0a|"; '
        'distance:0; within:200; nocase; pcre:"/a.b/Ri"; byte_test:2,>,5,0,relative; '
        "byte_jump:1,0,relative,post_offset 2; flags:S+,12; dsize:>10; ttl:<64; "
        "classtype:trojan-activity; threshold:type limit, track by_src, count 1, seconds 60; "
        "flowbits:set,seen; metadata:created_at 2024; reference:url,example.org; "
        "sid:10; rev:3; gid:2;)"
    )
    assert (r.action, r.sid, r.rev, r.gid, r.msg) == ("drop", 10, 3, 2, 'x "q"; y')
    assert r.flow_dir == 1 and r.flow_state == "established"
    assert r.category == "A Network Trojan was detected" and r.priority == 1
    c1, c2, pc, bt, bj = r.steps
    assert isinstance(c1, Content) and (c1.pattern, c1.offset, c1.depth) == (b"GET", 0, 3)
    assert isinstance(c2, Content) and (c2.pattern, c2.distance, c2.within, c2.nocase) == (
        b"\r\n",
        0,
        200,
        True,
    )
    assert isinstance(pc, Pcre) and pc.relative and pc.regex.search(b"A\nB") is None
    assert isinstance(bt, ByteTest) and isinstance(bj, ByteJump) and bj.post_offset == 2
    assert r.flags == ("all", 0x02, 0xFF & ~0xC0)
    assert r.dsize == ("gt", 10, 0) and r.ttl == ("lt", 64, 0)
    assert r.threshold is not None and (r.threshold.type, r.threshold.count) == ("limit", 1)


def test_priority_overrides_classtype() -> None:
    r = parse_rule("alert ip any any -> any any (classtype:bad-unknown; priority:4; sid:1;)")
    assert r.priority == 4 and r.category == "Potentially Bad Traffic"


def test_default_priority_without_classtype() -> None:
    assert parse_rule("alert ip any any -> any any (sid:1;)").priority == 3


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ('alert http any any -> any any (http.uri; content:"x"; sid:7;)', "http.uri"),
        ("alert tcp any any -> any any (dce_iface:1234; sid:7;)", "dce_iface"),
        ('alert tcp any any -> any any (pcre:"/x/U"; sid:7;)', "/U"),
        ("alert tcp-stream any any -> any any (sid:7;)", "tcp-stream"),
        ("alert quic any any -> any any (sid:7;)", "quic"),
        ("alert tcp any any -> any any (flow:only_stream; sid:7;)", "only_stream"),
    ],
)
def test_unsupported_rules_are_reported_with_sid(rule: str, reason: str) -> None:
    with pytest.raises(UnsupportedRuleError) as exc:
        parse_rule(rule, line=12)
    assert exc.value.sid == 7 and exc.value.line == 12 and reason in exc.value.reason


@pytest.mark.parametrize(
    "rule",
    [
        "alert tcp any any -> any any (sid:1",  # no closing paren
        'alert tcp any any -> any any (content:"abc; sid:1;)',  # unbalanced quote
        "alert tcp any any -> any any (content:abc; sid:1;)",  # unquoted content
        'alert tcp any any -> any any (content:"|4g|"; sid:1;)',  # bad hex
        "alert tcp any any -> any any (nocase; sid:1;)",  # modifier without content
        'alert tcp any any -> any any (content:"ab"; depth:1; sid:1;)',  # depth < len
        'alert tcp any any -> any any (content:"a"; content:"b"; distance:1; offset:2; sid:1;)',
        'alert tcp any any -> any any (pcre:"/(/"; sid:1;)',
        "alert tcp any any -> any any (threshold:type limit, track by_src, count 1, seconds 1; "
        "detection_filter:track by_src, count 1, seconds 1; sid:1;)",
        "alert tcp any any -> any any (classtype:nope; sid:1;)",
        'alert tcp any any -> any any (msg:"no sid";)',
        "yell tcp any any -> any any (sid:1;)",
        "alert tcp any any <- any any (sid:1;)",
        "alert tcp any -> any any (sid:1;)",
        "alert tcp any any -> any any (byte_test:2,~,1,0; sid:1;)",
        'alert tcp any any -> any any (content:"a"; distance:v; sid:1;)',  # unknown var
        "alert tcp any any -> any any (sid:1; sid:2;)",
    ],
)
def test_malformed_rules_raise_parse_error(rule: str) -> None:
    with pytest.raises(RuleParseError):
        parse_rule(rule)


def test_parse_rules_collects_errors_with_line_numbers() -> None:
    text = "\n".join(
        [
            "# comment",
            "",
            'alert tcp any any -> any any (msg:"ok"; content:"a"; sid:1;)',
            'alert tcp any any -> any any (msg:"bad"; frobnicate; sid:2;)',
            'alert udp any any -> any any (msg:"continued"; \\',
            '    content:"b"; sid:3;)',
            "alert tcp any any -> any any (content:; sid:4;)",
        ]
    )
    rs = parse_rules(text)
    assert [r.sid for r in rs.rules] == [1, 3]
    assert [(e.sid, e.line) for e in rs.errors] == [(2, 4), (4, 7)]
    assert isinstance(rs.errors[0], UnsupportedRuleError)


def test_content_hex_and_escapes() -> None:
    r = parse_rule('alert tcp any any -> any any (content:"uid=0|28|root|29|\\;"; sid:1;)')
    assert isinstance(r.steps[0], Content) and r.steps[0].pattern == b"uid=0(root);"


def test_negated_content_and_pcre() -> None:
    r = parse_rule('alert tcp any any -> any any (content:!"x"; pcre:!"/y/"; sid:1;)')
    c, p = r.steps
    assert isinstance(c, Content) and c.negated
    assert isinstance(p, Pcre) and p.negated


def test_flowbits_forms() -> None:
    r = parse_rule("alert tcp any any -> any any (flowbits:isset,a|b; flowbits:noalert; sid:1;)")
    assert r.noalert and r.flowbits[0].names == ("a", "b") and r.flowbits[0].any_of
    with pytest.raises(RuleParseError):
        parse_rule("alert tcp any any -> any any (flowbits:frob,a; sid:1;)")


def test_bidirectional_and_app_proto_header() -> None:
    r = parse_rule("alert http any any <> any any (sid:1;)")
    assert r.bidirectional and r.app_proto == "http" and r.ip_protos == frozenset({6})
