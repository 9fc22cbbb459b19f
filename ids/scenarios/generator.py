"""Labelled attack scenarios as pcaps, with an answer key.

`generate_scenarios(out_dir, seed)` writes one pcap per scenario (attack traffic mixed
with benign background, see `ids.scenarios.network`) and ``answer_key.json``::

    {"version": 1, "seed": 7, "inventory": {"10.0.0.11": "node-01", ...},
     "scenarios": [{"name": "syn_scan", "pcap": "syn_scan.pcap", "packets": 1234,
                    "attack_packets": 900, "needs_rule_engine": false,
                    "expected": [{"detection": "ids.perimeter.syn_scan",
                                  "src_ip": ["203.0.113.5"], "dest_ip": ["10.0.0.80"]}]}]}

An expected entry is matched by an alert with the same detection id (``sid:<n>`` for a
rule) whose src_ip is in `src_ip` and dest_ip in `dest_ip` (an empty list matches any).

Invariants: the same seed gives byte-identical pcaps and key; each pcap holds a few
thousand packets; scapy is imported only inside the crafting functions.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ids.scenarios.craft import Trace, dns_query_frame, tcp_frame, tcp_session, udp_frame
from ids.scenarios.network import (
    API_PORT,
    CLIENTS,
    NODES,
    RESOLVER,
    SCHEDULER,
    T0,
    WEB,
    background,
)

RULES_FILE = Path(__file__).with_name("scenario.rules")
EXPLOIT_SID = 9_000_001


@dataclass(frozen=True)
class ScenarioResult:
    """What one scenario builder produced: the trace and its expected detections."""

    trace: Trace
    expected: list[dict[str, Any]]
    needs_rule_engine: bool = False


def _expect(detection: str, src: Iterable[str] = (), dst: Iterable[str] = ()) -> dict[str, Any]:
    return {"detection": detection, "src_ip": sorted(src), "dest_ip": sorted(dst)}


def _syn_scan(rng: random.Random) -> ScenarioResult:
    trace = Trace()
    attacker = "203.0.113.5"
    background(trace, rng, T0, 20.0)
    ports = rng.sample(range(1, 10000), 400)
    t = T0 + 2.0
    for i, port in enumerate(ports):
        sport = 40000 + (i % 3)
        trace.add(t, tcp_frame(attacker, WEB, sport, port, "S", seq=rng.getrandbits(32)), "attack")
        reply = "SA" if port in (80, 443) else "RA"
        trace.add(t + 0.001, tcp_frame(WEB, attacker, port, sport, reply, ack=1), "attack")
        t += 0.01
    return ScenarioResult(trace, [_expect("ids.perimeter.syn_scan", [attacker], [WEB])])


def _distributed_scan(rng: random.Random) -> ScenarioResult:
    trace = Trace()
    target = "10.0.0.11"
    sources = [f"198.51.100.{10 + i}" for i in range(25)]
    background(trace, rng, T0, 30.0)
    ports = rng.sample(range(1, 10000), 25 * 6)
    probes = [(sources[i % 25], port) for i, port in enumerate(ports)]
    rng.shuffle(probes)
    t = T0 + 3.0
    for src, port in probes:
        sport = rng.randint(32768, 60999)
        trace.add(t, tcp_frame(src, target, sport, port, "S", seq=rng.getrandbits(32)), "attack")
        trace.add(t + 0.001, tcp_frame(target, src, port, sport, "RA", ack=1), "attack")
        t += 0.1
    return ScenarioResult(trace, [_expect("ids.perimeter.distributed_scan", sources, [target])])


def _syn_flood(rng: random.Random) -> ScenarioResult:
    trace = Trace()
    background(trace, rng, T0, 10.0)
    t = T0 + 4.0
    for _ in range(1600):
        src = f"100.{rng.randint(64, 127)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        frame = tcp_frame(src, WEB, rng.randint(1024, 65535), 443, "S", seq=rng.getrandbits(32))
        trace.add(t, frame, "attack")
        t += 0.001
    return ScenarioResult(trace, [_expect("ids.perimeter.syn_flood", [], [WEB])])


def _udp_flood(rng: random.Random) -> ScenarioResult:
    trace = Trace()
    target = "10.0.0.12"
    sources = [f"203.0.113.{50 + i}" for i in range(8)]
    background(trace, rng, T0, 10.0)
    t = T0 + 4.0
    payload = bytes(rng.getrandbits(8) for _ in range(256))
    for i in range(2400):
        frame = udp_frame(
            sources[i % 8], target, rng.randint(1024, 65535), rng.randint(1, 65535), payload
        )
        trace.add(t, frame, "attack")
        t += 0.0008
    return ScenarioResult(trace, [_expect("ids.perimeter.udp_flood", sources, [target])])


def _dns_tunnel(rng: random.Random) -> ScenarioResult:
    trace = Trace()
    client = "10.0.1.66"
    background(trace, rng, T0, 60.0)
    t = T0 + 5.0
    for i in range(150):
        chunk = base64.b32encode(bytes(rng.getrandbits(8) for _ in range(35))).decode()
        qname = f"{chunk.rstrip('=').lower()}.{i}.x.badtunnel.net"
        frame = dns_query_frame(client, RESOLVER, rng.randint(32768, 60999), i + 1, qname, "TXT")
        trace.add(t, frame, "attack")
        t += 0.3
    return ScenarioResult(trace, [_expect("ids.perimeter.dns_tunnel", [client], [RESOLVER])])


def _exploit_payload(rng: random.Random) -> ScenarioResult:
    trace = Trace()
    attacker, target = "203.0.113.77", "10.0.0.13"
    background(trace, rng, T0, 10.0)
    req = b"GET /cgi-bin/../../../../etc/passwd HTTP/1.1\r\nHost: node-03\r\n\r\n"
    tcp_session(
        trace, T0 + 5.0, attacker, 51515, target, 8080, req, b"HTTP/1.1 404\r\n\r\n", "attack"
    )
    expected = [_expect(f"sid:{EXPLOIT_SID}", [attacker], [target])]
    return ScenarioResult(trace, expected, needs_rule_engine=True)


def _brute_force(rng: random.Random) -> ScenarioResult:
    trace = Trace()
    attacker = "203.0.113.90"
    background(trace, rng, T0, 40.0)
    t = T0 + 5.0
    for i in range(60):
        body = f'{{"user":"admin","password":"guess{i:04d}"}}'.encode()
        req = b"POST /v1/token HTTP/1.1\r\nContent-Type: application/json\r\n\r\n" + body
        resp = b"HTTP/1.1 401 Unauthorized\r\n\r\n"
        tcp_session(trace, t, attacker, 45000 + i, SCHEDULER, API_PORT, req, resp, "attack")
        t += 0.5
    return ScenarioResult(trace, [_expect("ids.perimeter.brute_force", [attacker], [SCHEDULER])])


def _lateral_movement(rng: random.Random) -> ScenarioResult:
    trace = Trace()
    src, dst = "10.0.0.11", "10.0.0.12"
    background(trace, rng, T0, 20.0)
    tcp_session(
        trace, T0 + 6.0, src, 50022, dst, 22, b"SSH-2.0-OpenSSH_9.2\r\n", b"SSH-2.0-x\r\n", "attack"
    )
    tcp_session(
        trace, T0 + 9.0, src, 50445, dst, 445, b"\x00\x00\x00\x45\xffSMB", b"\x00", "attack"
    )
    return ScenarioResult(trace, [_expect("ids.perimeter.lateral_movement", [src], [dst])])


def _benign(rng: random.Random) -> ScenarioResult:
    trace = Trace()
    background(trace, rng, T0, 120.0)
    return ScenarioResult(trace, [])


SCENARIOS: dict[str, Callable[[random.Random], ScenarioResult]] = {
    "syn_scan": _syn_scan,
    "distributed_scan": _distributed_scan,
    "syn_flood": _syn_flood,
    "udp_flood": _udp_flood,
    "dns_tunnel": _dns_tunnel,
    "exploit_payload": _exploit_payload,
    "brute_force": _brute_force,
    "lateral_movement": _lateral_movement,
    "benign": _benign,
}


def generate_scenarios(
    out_dir: str | Path, seed: int = 0, only: Iterable[str] | None = None
) -> dict[str, Any]:
    """Write the scenario pcaps and ``answer_key.json`` into `out_dir`; return the key.

    Raises KeyError naming an unknown scenario in `only`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(SCENARIOS) if only is None else list(only)
    for name in names:
        if name not in SCENARIOS:
            raise KeyError(name)
    entries = []
    for name in names:
        result = SCENARIOS[name](random.Random(f"{seed}:{name}"))
        pcap = f"{name}.pcap"
        packets = result.trace.write(out / pcap)
        entries.append(
            {
                "name": name,
                "pcap": pcap,
                "packets": packets,
                "attack_packets": result.trace.labels.get("attack", 0),
                "needs_rule_engine": result.needs_rule_engine,
                "expected": result.expected,
            }
        )
    key = {
        "version": 1,
        "seed": seed,
        "inventory": dict(NODES),
        "clients": list(CLIENTS),
        "rules": RULES_FILE.name,
        "scenarios": entries,
    }
    (out / "answer_key.json").write_text(json.dumps(key, indent=2, sort_keys=True) + "\n")
    (out / RULES_FILE.name).write_text(RULES_FILE.read_text())
    return key
