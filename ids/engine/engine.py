"""The perimeter detection engine: decode -> flow -> prefilter -> rule evaluation -> EVE.

`Engine.process(packet_bytes, ts, linktype)` returns the EVE alert records of one packet.
Rules are ordered as Suricata orders them (action order, flowbits setters before readers,
priority, then file order); the first matching `pass` rule stops alerting for the packet
(and, for a rule without payload or per-packet conditions, passes the whole flow); in IPS
mode a `drop`/`reject` marks the packet blocked and, for such a flow-wide rule, drops the
flow's later packets. Thresholds and detection filters count per track key in fixed windows
that start at the first match. Payload rules are matched on each packet's payload and, for
TCP, across segment boundaries using bounded in-order stream tails (`ids.engine.stream`);
full stream reassembly and app-layer parsing (http.uri, tls.sni, ...) are out of scope and
rules needing them are rejected at load. Everything depends only on the packets and their
timestamps, so a capture always yields the same records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ids.engine.applayer import detect_app_proto
from ids.engine.decode import Decoder
from ids.engine.errors import EngineConfigError
from ids.engine.eve import add_packet, alert_event, drop_event, flow_event
from ids.engine.flow import Flow, FlowTable
from ids.engine.flowvars import apply_flowbits, apply_flowints, flowbits_ok, flowints_ok
from ids.engine.inspect import inspect_payload
from ids.engine.packet import PROTO_TCP, Packet
from ids.engine.prefilter import Prefilter
from ids.engine.rules.addresses import match_address, match_port
from ids.engine.rules.model import Content, Rule
from ids.engine.rules.options import flags_match, num_check
from ids.engine.rules.parser import RuleSet, parse_rules
from ids.engine.stream import stream_capable, stream_tail, update_tail
from ids.engine.thresholds import ThresholdTable

DEFAULT_ACTION_ORDER = ("pass", "drop", "reject", "alert")
MIDSTREAM_POLICIES = ("ignore", "pass-flow", "bypass", "drop-flow", "reject")
_POLICY_ACTION = {"pass-flow": "pass", "bypass": "bypass", "drop-flow": "drop", "reject": "reject"}
_APP_DETECT_TRIES = 4
_ECHO_TYPES = frozenset({0, 8, 13, 14, 15, 16, 17, 18, 128, 129})


@dataclass(frozen=True)
class EngineConfig:
    """Engine settings (Suricata's names where they exist).

    action_order: rule action precedence (Suricata's `action-order`).
    ips: simulate IPS — drop/reject block packets (alert.action "blocked") and drop flows.
    midstream / midstream_policy: pick up TCP sessions without a handshake; the policy
        (ignore, pass-flow, bypass, drop-flow, reject) applies to such sessions.
    max_flows, max_threshold_entries: memory bounds.
    packet_alert_max: most alerts logged per packet (Suricata's default 15).
    log_flows: keep ended flows for EVE flow records. log_pcap_cnt: add pcap_cnt (offline).
    log_drops: also return EVE drop records for packets dropped (IPS rule drops, dropped
        flows, the drop-flow midstream policy), as Suricata's drop log with flows: all.
    log_packet: add the whole frame (base64 `packet`, `packet_info.linktype`) to alerts, so
        analysts can decode it later (`ids.engine.explain.describe_packet`).
    node_id: put in every record's `cntrust.node_id`.
    prefilter_backend: "auto" (hyperscan if importable), "hyperscan" or "pyahocorasick".
    stream_tail_bytes: TCP payload kept per flow direction to match content split across
        segments (0 disables; see ids.engine.stream).
    """

    action_order: tuple[str, ...] = DEFAULT_ACTION_ORDER
    ips: bool = False
    midstream: bool = False
    midstream_policy: str = "ignore"
    max_flows: int = 65_536
    packet_alert_max: int = 15
    max_threshold_entries: int = 65_536
    log_flows: bool = False
    log_pcap_cnt: bool = True
    log_drops: bool = False
    log_packet: bool = False
    node_id: str | None = None
    prefilter_backend: str = "auto"
    stream_tail_bytes: int = 512


def _validate(cfg: EngineConfig) -> None:
    if cfg.midstream_policy not in MIDSTREAM_POLICIES:
        raise EngineConfigError("midstream_policy", f"must be one of {MIDSTREAM_POLICIES}")
    unknown = set(cfg.action_order) - set(DEFAULT_ACTION_ORDER)
    if unknown or len(set(cfg.action_order)) != len(cfg.action_order):
        raise EngineConfigError("action_order", "must list pass, drop, reject, alert at most once")
    for name in ("max_flows", "packet_alert_max", "max_threshold_entries"):
        if getattr(cfg, name) < 1:
            raise EngineConfigError(name, "must be at least 1")
    if cfg.stream_tail_bytes < 0:
        raise EngineConfigError("stream_tail_bytes", "must not be negative")
    if cfg.prefilter_backend not in ("auto", "hyperscan", "pyahocorasick"):
        raise EngineConfigError("prefilter_backend", "must be auto, hyperscan or pyahocorasick")


def _action_rank(action: str, order: Sequence[str]) -> int:
    name = "reject" if action.startswith("reject") else action
    return order.index(name) if name in order else len(order)


def _flowbits_rank(rule: Rule) -> int:
    sets = any(f.cmd in ("set", "unset", "toggle") for f in rule.flowbits)
    reads = any(f.cmd in ("isset", "isnotset") for f in rule.flowbits)
    if sets and not reads:
        return 0
    if sets and reads:
        return 1
    return 2 if reads else 3


def _flow_wide(rule: Rule) -> bool:
    """A rule with only header conditions: its pass/drop applies to the whole flow."""
    return not (
        rule.steps
        or rule.flowbits
        or rule.flowints
        or rule.threshold
        or rule.dsize
        or rule.flags
        or rule.itype
        or rule.icode
        or rule.ttl
        or rule.ip_proto
        or rule.flow_dir
        or rule.flow_state
        or rule.icmp_id is not None
        or rule.icmp_seq is not None
        or rule.tcp_seq is not None
        or rule.tcp_ack is not None
        or rule.window
    )


def _prefilter_content(rule: Rule) -> Content | None:
    best: Content | None = None
    for step in rule.steps:
        if isinstance(step, Content) and not step.negated:
            if step.fast_pattern:
                return step
            if best is None or len(step.pattern) > len(best.pattern):
                best = step
    return best


class Engine:
    """Signature engine over raw packets.

    Args:
        rules: rules text, a parsed `RuleSet`, or a list of `Rule`.
        vars: address/port variables overriding the defaults (e.g. {"HOME_NET": "[10.0.0.0/8]"}).
        clock: time source for `process(..., ts=None)` (live capture).
        config: `EngineConfig`.

    Rules that failed to parse are in `rule_errors` (each with sid, line and reason).

    Raises:
        EngineConfigError: a config value is out of range.
    """

    def __init__(
        self,
        rules: str | RuleSet | Sequence[Rule],
        vars: dict[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        config: EngineConfig | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        _validate(self.config)
        if isinstance(rules, str):
            rules = parse_rules(rules, vars)
        if isinstance(rules, RuleSet):
            self.rule_errors = list(rules.errors)
            rule_list = list(rules.rules)
        else:
            self.rule_errors = []
            rule_list = list(rules)
        order = self.config.action_order
        rule_list.sort(
            key=lambda r: (_action_rank(r.action, order), _flowbits_rank(r), r.priority, r.order)
        )
        self.rules = rule_list
        self._flow_wide = [_flow_wide(r) for r in rule_list]
        self.clock = clock or time.time
        self.decoder = Decoder()
        self.flows = FlowTable(
            max_flows=self.config.max_flows,
            midstream=self.config.midstream,
            record_ended=self.config.log_flows,
        )
        self.pcap_cnt = 0
        self.alerts_total = 0
        self.thresholds = ThresholdTable(self.config.max_threshold_entries)
        self._header_rules: dict[int, list[int]] = {}
        self._always_payload: dict[int, list[int]] = {}
        patterns = []
        for idx, rule in enumerate(rule_list):
            if not rule.steps:
                continue
            pf = _prefilter_content(rule)
            rule.prefilter = pf
            if pf is not None:
                patterns.append(((pf.pattern, pf.nocase), idx))
        self.prefilter = Prefilter(patterns, self.config.prefilter_backend)
        self._stream_capable = [stream_capable(r) for r in rule_list]
        longest = max((len(p[0][0]) for p in patterns), default=0)
        self._boundary = max(longest - 1, 0)
        use_stream = self._boundary > 0 and any(self._stream_capable)
        self._tail_bytes = self.config.stream_tail_bytes if use_stream else 0

    def _rules_for(self, proto: int, payload: bool) -> list[int]:
        cache = self._always_payload if payload else self._header_rules
        got = cache.get(proto)
        if got is None:
            got = []
            for idx, r in enumerate(self.rules):
                if r.ip_protos is not None and proto not in r.ip_protos:
                    continue
                if (payload and r.steps and r.prefilter is None) or (not payload and not r.steps):
                    got.append(idx)
            cache[proto] = got
        return got

    def process(
        self, packet_bytes: bytes, ts: float | None = None, linktype: int = 1
    ) -> list[dict[str, Any]]:
        """Decode and inspect one packet; return its EVE alert records (possibly none; plus
        drop records when `config.log_drops`).

        Never raises on packet content: decode problems are counted in `decoder.events`.
        """
        self.pcap_cnt += 1
        if ts is None:
            ts = self.clock()
        pkt = self.decoder.decode(packet_bytes, ts, linktype)
        if pkt is None:
            return []
        return self._inspect(pkt, self.pcap_cnt)

    def _inspect(self, pkt: Packet, pcap_cnt: int) -> list[dict[str, Any]]:
        flow: Flow | None = None
        to_server = True
        if not pkt.is_frag and pkt.ipver:
            flow, to_server = self.flows.lookup(pkt)
            if flow.action:
                if flow.action == "drop" and self.config.log_drops:
                    return [self._drop(pkt, flow, pcap_cnt, "flow drop")]
                return []
            if flow.midstream and flow.pkts_toserver + flow.pkts_toclient == 1:
                policy = self.config.midstream_policy
                if policy != "ignore":
                    flow.action = _POLICY_ACTION[policy]
                    if flow.action == "drop" and self.config.log_drops:
                        return [self._drop(pkt, flow, pcap_cnt, "stream midstream")]
                    return []
            if pkt.payload and not flow.app_proto and flow.app_tries < _APP_DETECT_TRIES:
                flow.app_tries += 1
                flow.app_proto = detect_app_proto(pkt.payload, pkt.proto, pkt.sport, pkt.dport)
        matched = self._match(pkt, flow, to_server)
        if not matched:
            return []
        return self._finalize(matched, pkt, flow, to_server, pcap_cnt)

    def _match(self, pkt: Packet, flow: Flow | None, to_server: bool) -> list[int]:
        proto = pkt.proto
        cands = self._header_rules.get(proto)
        if cands is None:
            cands = self._rules_for(proto, False)
        payload = pkt.payload
        if payload:
            more = self._always_payload.get(proto)
            if more is None:
                more = self._rules_for(proto, True)
            pf = self.prefilter.candidates(payload)
            if more:
                pf.extend(more)
            if pf:
                if cands:
                    pf.extend(cands)
                cands = sorted(set(pf)) if len(pf) > 1 else pf
        rules = self.rules
        out = []
        for idx in cands:
            rule = rules[idx]
            if self._rule_matches(rule, pkt, flow, to_server, payload):
                if flow is not None:
                    if rule.flowbits:
                        apply_flowbits(rule, flow)
                    if rule.flowints:
                        apply_flowints(rule, flow)
                out.append(idx)
        if proto == PROTO_TCP and flow is not None and self._tail_bytes:
            tail = stream_tail(flow, to_server, pkt.tcp_seq) if payload else b""
            if tail:
                out = self._match_across(pkt, flow, to_server, tail, out)
            update_tail(flow, to_server, pkt.tcp_seq, pkt.tcp_flags, payload, self._tail_bytes)
        return out

    def _match_across(
        self, pkt: Packet, flow: Flow, to_server: bool, tail: bytes, out: list[int]
    ) -> list[int]:
        """Stream-capable rules whose match spans the tail and this packet's payload."""
        k = self._boundary
        payload = pkt.payload
        found = self.prefilter.candidates(tail[-k:] + payload[:k])
        if not found:
            return out
        window = tail + payload
        done = set(out)
        added = False
        for idx in sorted(set(found)):
            rule = self.rules[idx]
            if idx in done or not self._stream_capable[idx]:
                continue
            if self._rule_matches(rule, pkt, flow, to_server, window) and not inspect_payload(
                rule.steps, tail
            ):
                if rule.flowbits:
                    apply_flowbits(rule, flow)
                if rule.flowints:
                    apply_flowints(rule, flow)
                out.append(idx)
                added = True
        return sorted(out) if added else out

    def _rule_matches(
        self, rule: Rule, pkt: Packet, flow: Flow | None, to_server: bool, buf: bytes
    ) -> bool:
        if rule.ip_protos is not None and pkt.proto not in rule.ip_protos:
            return False
        if rule.app_proto and (flow is None or flow.app_proto != rule.app_proto):
            return False
        if not _header(rule, pkt.src, pkt.sport, pkt.dst, pkt.dport) and not (
            rule.bidirectional and _header(rule, pkt.dst, pkt.dport, pkt.src, pkt.sport)
        ):
            return False
        if rule.flow_dir or rule.flow_state:
            if flow is None:
                return False
            if rule.flow_dir == 1 and not to_server:
                return False
            if rule.flow_dir == 2 and to_server:
                return False
            st = rule.flow_state
            if st == "established" and not flow.pkt_established:
                return False
            if st == "not_established" and flow.pkt_established:
                return False
        if rule.flow_frag and (rule.flow_frag == "only_frag") != pkt.pseudo:
            return False
        if rule.dsize is not None and not num_check(rule.dsize, len(pkt.payload)):
            return False
        if rule.itype is not None or rule.icode is not None:
            if pkt.icmp_type < 0:
                return False
            if rule.itype is not None and not num_check(rule.itype, pkt.icmp_type):
                return False
            if rule.icode is not None and not num_check(rule.icode, pkt.icmp_code):
                return False
        if rule.icmp_id is not None and (
            pkt.icmp_type not in _ECHO_TYPES or pkt.icmp_id != rule.icmp_id
        ):
            return False
        if rule.icmp_seq is not None and (
            pkt.icmp_type not in _ECHO_TYPES or pkt.icmp_seq != rule.icmp_seq
        ):
            return False
        if rule.ttl is not None and not num_check(rule.ttl, pkt.ttl):
            return False
        if rule.ip_proto is not None:
            op, n = rule.ip_proto
            if not num_check((op, n, 0), pkt.proto):
                return False
        if rule.flags is not None or rule.tcp_seq is not None or rule.tcp_ack is not None:
            if pkt.proto != PROTO_TCP:
                return False
            if rule.flags is not None and not flags_match(rule.flags, pkt.tcp_flags):
                return False
            if rule.tcp_seq is not None and pkt.tcp_seq != rule.tcp_seq:
                return False
            if rule.tcp_ack is not None and pkt.tcp_ack != rule.tcp_ack:
                return False
        if rule.window is not None:
            neg, win = rule.window
            if pkt.proto != PROTO_TCP or (pkt.tcp_win == win) == neg:
                return False
        if rule.flowbits and not flowbits_ok(rule, flow):
            return False
        if rule.flowints and not flowints_ok(rule, flow):
            return False
        if rule.steps:
            if not pkt.payload:
                return False
            return inspect_payload(rule.steps, buf)
        return True

    def _finalize(
        self, matched: list[int], pkt: Packet, flow: Flow | None, to_server: bool, pcap_cnt: int
    ) -> list[dict[str, Any]]:
        cfg = self.config
        out: list[dict[str, Any]] = []
        drop_rule: Rule | None = None
        for idx in matched:
            rule = self.rules[idx]
            action = rule.action
            if action == "pass":
                if flow is not None and self._flow_wide[idx] and not flow.action:
                    flow.action = "pass"
                break
            blocked = False
            if action != "alert" and cfg.ips:
                blocked = True
                if drop_rule is None:
                    drop_rule = rule
                if flow is not None and self._flow_wide[idx] and not flow.action:
                    flow.action = "drop"
            if rule.noalert or not self.thresholds.allow(rule, pkt, flow):
                continue
            cnt = pcap_cnt if cfg.log_pcap_cnt else None
            ev = alert_event(rule, pkt, flow, to_server, cnt, blocked, cfg.node_id)
            if cfg.log_packet:
                add_packet(ev, pkt)
            out.append(ev)
            if len(out) >= cfg.packet_alert_max:
                break
        if out and flow is not None:
            flow.alerted = True
        self.alerts_total += len(out)
        if drop_rule is not None and cfg.log_drops:
            out.append(self._drop(pkt, flow, pcap_cnt, "rules", drop_rule, to_server))
        return out

    def _drop(
        self,
        pkt: Packet,
        flow: Flow | None,
        pcap_cnt: int,
        reason: str,
        rule: Rule | None = None,
        to_server: bool = True,
    ) -> dict[str, Any]:
        cnt = pcap_cnt if self.config.log_pcap_cnt else None
        alert = None
        if rule is not None:
            alert = alert_event(rule, pkt, flow, to_server, cnt, True, None)["alert"]
        return drop_event(pkt, flow, cnt, reason, alert, self.config.node_id)

    def stats(self) -> dict[str, Any]:
        """Counters for monitoring: packets, alerts, flows, decode counters and events."""
        return {
            "packets": self.pcap_cnt,
            "alerts": self.alerts_total,
            "flows_active": len(self.flows),
            "flows_created": self.flows.created,
            "flows_evicted": self.flows.evicted,
            "decoder": dict(self.decoder.counters),
            "decode_events": dict(sorted(self.decoder.events.items())),
            "rules_loaded": len(self.rules),
            "rules_failed": len(self.rule_errors),
        }

    def end_of_input(self) -> list[dict[str, Any]]:
        """Flush all flows; return their EVE flow records when `config.log_flows`."""
        self.flows.flush()
        return self.drain_flow_events()

    def drain_flow_events(self) -> list[dict[str, Any]]:
        """EVE flow records of flows that ended since the last call (if `log_flows`)."""
        ended = self.flows.ended
        self.flows.ended = []
        if not self.config.log_flows:
            return []
        return [flow_event(f, reason, self.config.node_id) for f, reason in ended]


def _header(rule: Rule, src: bytes, sport: int, dst: bytes, dport: int) -> bool:
    if rule.src is not None and not match_address(rule.src, src):
        return False
    if rule.dst is not None and not match_address(rule.dst, dst):
        return False
    if rule.sport is not None and not match_port(rule.sport, sport):
        return False
    return rule.dport is None or match_port(rule.dport, dport)
