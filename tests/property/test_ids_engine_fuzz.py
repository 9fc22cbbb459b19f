"""Hypothesis fuzzing of the perimeter engine's parsers: only the specific error, never a crash."""

from __future__ import annotations

import io
import ipaddress
import struct

import communityid
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ids.engine import (
    Decoder,
    Engine,
    PcapFormatError,
    PcapReader,
    RuleParseError,
    community_id_v1,
    parse_rule,
    parse_rules,
)
from ids.engine.frag import Defragmenter
from ids.engine.inspect import inspect_payload

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LINKTYPES = st.sampled_from([0, 1, 12, 101, 113, 228, 229, 276, 9999])


def _eth_ipv4_prefix() -> st.SearchStrategy[bytes]:
    """Frames that start like Ethernet/IPv4 so the fuzzer reaches the deeper layers."""
    return st.builds(
        lambda proto, rest: (
            b"\x02" * 12
            + b"\x08\x00"
            + b"\x45\x00"
            + rest[:2]
            + b"\x00\x01\x00\x00\x40"
            + bytes([proto])
            + b"\x00\x00"
            + b"\x0a\x00\x00\x01\x0a\x00\x00\x02"
            + rest[2:]
        ),
        st.sampled_from([1, 6, 17, 58, 47, 255]),
        st.binary(min_size=2, max_size=120),
    )


def _eth_ipv6_prefix() -> st.SearchStrategy[bytes]:
    """Ethernet/IPv6 frames whose payload length matches, with extension/fragment headers."""
    return st.builds(
        lambda nh, rest: (
            b"\x02" * 12
            + b"\x86\xdd\x60\x00\x00\x00"
            + struct.pack("!HBB", len(rest), nh, 64)
            + b"\x20\x01\x0d\xb8"
            + b"\x00" * 11
            + b"\x01"
            + b"\x20\x01\x0d\xb8"
            + b"\x00" * 11
            + b"\x02"
            + rest
        ),
        st.sampled_from([0, 6, 17, 43, 44, 51, 58, 60]),
        st.binary(min_size=0, max_size=120),
    )


@FAST
@given(
    frames=st.lists(
        st.one_of(st.binary(max_size=200), _eth_ipv4_prefix(), _eth_ipv6_prefix()), max_size=8
    ),
    linktype=LINKTYPES,
)
def test_decoder_never_raises(frames: list[bytes], linktype: int) -> None:
    dec = Decoder()
    for frame in frames:
        pkt = dec.decode(frame, 0.0, linktype)
        if pkt is not None:
            assert len(pkt.src) in (0, 4, 16) and len(pkt.payload) <= 65_535


@FAST
@given(frames=st.lists(st.one_of(st.binary(max_size=120), _eth_ipv4_prefix()), max_size=20))
def test_engine_never_raises_on_packets(frames: list[bytes]) -> None:
    engine = Engine(
        'alert ip any any -> any any (content:"a"; pcre:"/b+/R"; '
        "byte_test:1,>,3,0,relative; sid:1;)\n"
        "alert tcp any any -> any any (flags:S; flow:to_server; sid:2;)\n"
    )
    for i, f in enumerate(frames):
        engine.process(f, float(i), 1)


@FAST
@given(data=st.binary(max_size=300))
def test_pcap_reader_raises_only_format_error(data: bytes) -> None:
    for head in (b"", b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + b"\x00" * 12 + b"\x01\x00\x00\x00"):
        try:
            reader = PcapReader(io.BytesIO(head + data))
        except PcapFormatError:
            continue
        list(reader)


@FAST
@given(body=st.binary(max_size=300))
def test_pcapng_reader_raises_only_format_error(body: bytes) -> None:
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    reader = PcapReader(io.BytesIO(shb + body))
    list(reader)


RULE_ATOMS = st.sampled_from(
    [
        "alert",
        "drop",
        "pass",
        "tcp",
        "udp",
        "ip",
        "icmp",
        "http",
        "any",
        "->",
        "<>",
        "!",
        "[",
        "]",
        "$HOME_NET",
        "10.0.0.0/8",
        "80",
        "1:1024",
        "(",
        ")",
        ";",
        ":",
        ",",
        '"',
        "|",
        "\\",
        "content",
        "nocase",
        "depth",
        "within",
        "distance",
        "pcre",
        "/a/R",
        "sid",
        "1",
        "msg",
        "flow",
        "established",
        "flags",
        "S+",
        "dsize",
        "<>",
        "byte_test",
        "byte_jump",
        "flowbits",
        "set,x",
        "threshold",
        "type limit",
        "track by_src",
        "count 1",
        "seconds 1",
        " ",
    ]
)


@FAST
@given(parts=st.lists(RULE_ATOMS, max_size=40), noise=st.text(max_size=40))
def test_rule_parser_raises_only_rule_parse_error(parts: list[str], noise: str) -> None:
    text = " ".join(parts) + noise
    try:
        rule = parse_rule(text)
    except RuleParseError as exc:
        assert exc.reason
        return
    assert rule.sid >= 1


@FAST
@given(text=st.text(max_size=500))
def test_parse_rules_never_raises(text: str) -> None:
    rs = parse_rules(text)
    assert all(isinstance(e, RuleParseError) for e in rs.errors)


@FAST
@given(
    payload=st.binary(max_size=200),
    pat=st.binary(min_size=1, max_size=4),
    off=st.integers(0, 50),
    dist=st.integers(-20, 20),
    within=st.integers(4, 60),
)
def test_inspection_never_raises(
    payload: bytes, pat: bytes, off: int, dist: int, within: int
) -> None:
    hexpat = pat.hex(" ")
    rule = parse_rule(
        f'alert tcp any any -> any any (content:"|{hexpat}|"; offset:{off}; '
        f'content:"|{hexpat}|"; distance:{dist}; within:{within}; '
        f"byte_jump:1,0,relative; byte_extract:1,0,v,relative; isdataat:v,relative; sid:1;)"
    )
    inspect_payload(rule.steps, payload)


@FAST
@given(payload=st.binary(max_size=100), pat=st.binary(min_size=1, max_size=5))
def test_content_agrees_with_naive_search(payload: bytes, pat: bytes) -> None:
    rule = parse_rule(f'alert tcp any any -> any any (content:"|{pat.hex(" ")}|"; sid:1;)')
    assert inspect_payload(rule.steps, payload) is (pat in payload)


@FAST
@given(
    frags=st.lists(
        st.tuples(st.integers(0, 9000), st.booleans(), st.binary(max_size=64)), max_size=40
    )
)
def test_defragmenter_never_raises_and_stays_bounded(frags: list[tuple[int, bool, bytes]]) -> None:
    events: dict[str, int] = {}
    d = Defragmenter(events, max_trackers=4, max_bytes=1024)
    hdr = b"\x45" + b"\x00" * 19
    for i, (off, more, data) in enumerate(frags):
        d.add((b"a" * 4, b"b" * 4, i % 6, 17), float(i), hdr, off * 8, more, data)
        assert len(d) <= 4 and d.buffered_bytes <= 1024 + 64


ADDR4 = st.integers(0, 2**32 - 1).map(lambda n: ipaddress.IPv4Address(n))
ADDR6 = st.integers(0, 2**128 - 1).map(lambda n: ipaddress.IPv6Address(n))


@FAST
@given(
    pair=st.one_of(
        st.tuples(ADDR4, ADDR4, st.sampled_from([1, 6, 17, 132])),
        st.tuples(ADDR6, ADDR6, st.sampled_from([6, 17, 58])),
    ),
    sport=st.integers(0, 65535),
    dport=st.integers(0, 65535),
)
def test_community_id_matches_reference(
    pair: tuple[object, object, int], sport: int, dport: int
) -> None:
    s, d, proto = pair
    if proto in (1, 58):
        sport, dport = sport % 256, dport % 256
    want = communityid.CommunityID().calc(
        communityid.FlowTuple(proto, str(s), str(d), sport, dport)
    )
    assert community_id_v1(s.packed, d.packed, proto, sport, dport) == want  # type: ignore[attr-defined]


@FAST
@given(frames=st.lists(st.one_of(_eth_ipv4_prefix(), st.binary(max_size=80)), max_size=15))
def test_engine_output_is_deterministic(frames: list[bytes]) -> None:
    from ids.engine import EngineConfig, eve_dumps

    rules = (
        'alert ip any any -> any any (content:"|00|"; sid:1;)\n'
        "alert ip any any -> any any (sid:2;)\n"
    )

    def run() -> list[str]:
        engine = Engine(rules, config=EngineConfig(log_flows=True))
        out = [
            eve_dumps(ev) for i, f in enumerate(frames) for ev in engine.process(f, 100.0 + i, 1)
        ]
        return out + [eve_dumps(ev) for ev in engine.end_of_input()]

    assert run() == run()
