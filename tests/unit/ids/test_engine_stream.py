"""Content split across TCP segments (bounded stream tails)."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from ids.engine import Engine, EngineConfig, parse_rule
from ids.engine.stream import stream_capable

ETH = Ether()


def seg(seq: int, data: bytes, flags: str = "PA", reply: bool = False) -> bytes:
    src, dst, sp, dp = (
        ("10.0.0.2", "10.0.0.1", 80, 4000) if reply else ("10.0.0.1", "10.0.0.2", 4000, 80)
    )
    return bytes(ETH / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq) / data)


def run(engine: Engine, frames: list[bytes]) -> list[tuple[int, int]]:
    out = []
    for i, f in enumerate(frames, 1):
        out.extend((i, a["alert"]["signature_id"]) for a in engine.process(f, float(i), 1))
    return out


RULES = 'alert tcp any any -> any any (content:"ATTACK-STRING"; sid:1;)\n'


def test_split_content_is_found_once_on_the_completing_packet() -> None:
    e = Engine(RULES)
    frames = [seg(100, b"xxATTACK-"), seg(109, b"STRINGyy"), seg(117, b"zz")]
    assert run(e, frames) == [(2, 1)]


def test_whole_content_in_one_packet_alerts_once() -> None:
    e = Engine(RULES)
    assert run(e, [seg(100, b"ATTACK-STRING"), seg(113, b"more")]) == [(1, 1)]


def test_retransmission_and_gap() -> None:
    e = Engine(RULES)
    frames = [seg(100, b"ATTACK-"), seg(100, b"ATTACK-"), seg(107, b"STRING")]
    assert run(e, frames) == [(3, 1)]
    gap = Engine(RULES)
    assert run(gap, [seg(100, b"ATTACK-"), seg(500, b"STRING")]) == []


def test_directions_are_separate() -> None:
    e = Engine(RULES)
    assert run(e, [seg(100, b"ATTACK-"), seg(900, b"STRING", reply=True)]) == []


def test_stream_matching_can_be_disabled() -> None:
    e = Engine(RULES, config=EngineConfig(stream_tail_bytes=0))
    assert run(e, [seg(100, b"ATTACK-"), seg(107, b"STRING")]) == []


def test_position_dependent_rules_are_packet_only() -> None:
    def capable(opts: str, proto: str = "tcp") -> bool:
        return stream_capable(parse_rule(f"alert {proto} any any -> any any ({opts} sid:1;)"))

    assert capable('content:"a"; content:"b"; distance:0;')
    assert not capable('content:"a"; depth:4;')
    assert not capable('content:"a"; startswith;')
    assert not capable('pcre:"/^a/";')
    assert not capable('content:"a"; dsize:>4;')
    assert not capable('content:"a";', proto="tcp-pkt")
    assert not capable('content:"a";', proto="udp")
