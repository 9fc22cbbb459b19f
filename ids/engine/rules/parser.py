"""Suricata rule parser for the subset the perimeter engine applies.

`parse_rules(text, variables)` returns a `RuleSet`: the rules that load, and one
`RuleParseError` per rule that does not (each with its sid and line number and a reason).
A rule with an unsupported keyword is rejected whole (`UnsupportedRuleError`), never loaded
with that keyword ignored. Accepted keywords that do not change matching: msg, sid, rev,
gid, classtype, priority, reference, metadata, target, fast_pattern, rawbytes, noalert.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ids.engine.errors import RuleParseError, UnsupportedRuleError
from ids.engine.rules import options as o
from ids.engine.rules.addresses import (
    DEFAULT_ADDRESS_VARS,
    DEFAULT_PORT_VARS,
    GroupError,
    parse_address,
    parse_ports,
)
from ids.engine.rules.classification import CLASSIFICATIONS
from ids.engine.rules.model import Content, Rule

MAX_RULE_BYTES = 64 * 1024
ACTIONS = ("alert", "pass", "drop", "reject", "rejectsrc", "rejectdst", "rejectboth")

_TRANSPORT = {
    "ip": None,
    "ipv4": None,
    "ip4": None,
    "ipv6": None,
    "ip6": None,
    "tcp": frozenset({6}),
    "tcp-pkt": frozenset({6}),
    "udp": frozenset({17}),
    "icmp": frozenset({1, 58}),
    "icmpv4": frozenset({1}),
    "icmpv6": frozenset({58}),
    "sctp": frozenset({132}),
}
APP_PROTOS: dict[str, frozenset[int]] = {
    "http": frozenset({6}),
    "http1": frozenset({6}),
    "tls": frozenset({6}),
    "ssh": frozenset({6}),
    "smb": frozenset({6}),
    "ftp": frozenset({6}),
    "smtp": frozenset({6}),
    "pgsql": frozenset({6}),
    "dns": frozenset({6, 17}),
}
_RE_HEADER = re.compile(r"^\s*(\S+)\s+(\S+)\s+(.+?)\s+(->|<>)\s+(.+?)\s*\((.*)\)\s*$", re.S)
_CONTENT_MODS = frozenset(
    {"nocase", "offset", "depth", "distance", "within", "startswith", "endswith", "fast_pattern"}
)
_PAYLOAD_KEYWORDS = frozenset(
    {"content", "pcre", "byte_test", "byte_jump", "byte_extract", "isdataat"}
)
_IGNORED = frozenset({"reference", "metadata", "rawbytes"})


@dataclass
class RuleSet:
    """Rules that loaded, and the errors of those that did not."""

    rules: list[Rule] = field(default_factory=list)
    errors: list[RuleParseError] = field(default_factory=list)


def _split_options(body: str) -> list[tuple[str, str | None]]:
    opts: list[tuple[str, str | None]] = []
    cur: list[str] = []
    in_q = False
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            cur.append(ch + body[i + 1])
            i += 2
            continue
        if ch == '"':
            in_q = not in_q
        if ch == ";" and not in_q:
            _add_opt(opts, "".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    if in_q:
        raise ValueError("unterminated quote in options")
    if "".join(cur).strip():
        raise ValueError("last option is not terminated by ';'")
    return opts


def _add_opt(opts: list[tuple[str, str | None]], text: str) -> None:
    text = text.strip()
    if not text:
        return
    if ":" in text:
        name, value = text.split(":", 1)
        opts.append((name.strip().lower(), value.strip()))
    else:
        opts.append((text.lower(), None))


def _find_sid(body: str) -> int | None:
    m = re.search(r"(?:^|;)\s*sid\s*:\s*(\d{1,19})\s*;", body)
    return int(m.group(1)) if m else None


def parse_rule(text: str, variables: Mapping[str, str] | None = None, line: int = 0) -> Rule:
    """Parse one rule.

    Raises:
        RuleParseError: the rule is malformed (carries sid when found, and `line`).
        UnsupportedRuleError: the rule uses a keyword or protocol the engine does not apply.
    """
    if len(text) > MAX_RULE_BYTES:
        raise RuleParseError("rule longer than 64 KiB", None, line)
    allvars = {**DEFAULT_ADDRESS_VARS, **DEFAULT_PORT_VARS, **(variables or {})}
    m = _RE_HEADER.match(text)
    if not m:
        raise RuleParseError(
            "not a rule: expected 'action proto src sport -> dst dport (...)'",
            _find_sid(text),
            line,
        )
    action, proto, src_part, direction, dst_part, body = m.groups()
    sid = _find_sid(body)
    action = action.lower()
    proto = proto.lower()
    if action not in ACTIONS:
        raise RuleParseError(f"unknown action {action!r}", sid, line)
    src_bits = src_part.split()
    dst_bits = dst_part.split()
    if len(src_bits) != 2 or len(dst_bits) != 2:
        raise RuleParseError("header needs address and port on both sides", sid, line)
    try:
        src = parse_address(src_bits[0], allvars)
        sport = parse_ports(src_bits[1], allvars)
        dst = parse_address(dst_bits[0], allvars)
        dport = parse_ports(dst_bits[1], allvars)
    except GroupError as exc:
        raise RuleParseError(f"header: {exc}", sid, line) from exc
    if proto == "tcp-stream":
        raise UnsupportedRuleError("proto tcp-stream needs stream reassembly", sid, line)
    app_proto = ""
    if proto in _TRANSPORT:
        ip_protos = _TRANSPORT[proto]
    elif proto in APP_PROTOS:
        ip_protos = APP_PROTOS[proto]
        app_proto = "http" if proto == "http1" else proto
    else:
        raise UnsupportedRuleError(f"protocol {proto!r} not supported", sid, line)
    rule = Rule(
        action=action,
        proto=proto,
        src=src,
        sport=sport,
        dst=dst,
        dport=dport,
        bidirectional=direction == "<>",
        sid=sid or 0,
        line=line,
        text=text.strip(),
        app_proto=app_proto,
        ip_protos=ip_protos,
    )
    try:
        opts = _split_options(body)
    except ValueError as exc:
        raise RuleParseError(str(exc), sid, line) from exc
    try:
        _apply_options(rule, opts)
    except UnsupportedRuleError as exc:
        raise UnsupportedRuleError(exc.reason, sid, line) from exc
    except o.UnsupportedOption as exc:
        raise UnsupportedRuleError(str(exc), sid, line) from exc
    except (o.OptionError, RuleParseError) as exc:
        reason = exc.reason if isinstance(exc, RuleParseError) else str(exc)
        raise RuleParseError(reason, sid, line) from exc
    if sid is None:
        raise RuleParseError("rule has no sid", None, line)
    return rule


def _apply_options(rule: Rule, opts: list[tuple[str, str | None]]) -> None:
    last: Content | None = None
    seen: set[str] = set()
    priority_set = False
    for name, value in opts:
        if name in _CONTENT_MODS:
            if last is None:
                raise RuleParseError(f"{name} without a preceding content")
            _content_mod(last, name, value)
            continue
        pass_through = name not in _PAYLOAD_KEYWORDS
        if name in (
            "msg",
            "sid",
            "rev",
            "gid",
            "classtype",
            "priority",
            "threshold",
            "detection_filter",
            "dsize",
            "flow",
            "flags",
            "ttl",
            "itype",
            "icode",
        ):
            if name in seen:
                raise RuleParseError(f"duplicate {name}")
            seen.add(name)
        if pass_through:
            _header_option(rule, name, value)
            if name == "priority":
                priority_set = True
            continue
        if value is None:
            raise RuleParseError(f"{name} needs a value")
        if name == "content":
            pattern, negated = o.parse_content(value)
            last = Content(pattern, negated)
            rule.steps.append(last)
        elif name == "pcre":
            rule.steps.append(o.parse_pcre(value))
        elif name == "byte_test":
            rule.steps.append(o.parse_byte_test(value))
        elif name == "byte_jump":
            rule.steps.append(o.parse_byte_jump(value))
        elif name == "byte_extract":
            rule.steps.append(o.parse_byte_extract(value))
        else:
            rule.steps.append(o.parse_isdataat(value))
    if rule.classtype:
        desc, prio = CLASSIFICATIONS[rule.classtype]
        rule.category = desc
        if not priority_set:
            rule.priority = prio
    _check_steps(rule)


def _header_option(rule: Rule, name: str, value: str | None) -> None:
    if name in _IGNORED:
        if name == "metadata" and value:
            rule.metadata.append(value)
        return
    if name == "noalert":
        rule.noalert = True
        return
    if value is None:
        raise UnsupportedRuleError(f"keyword {name!r} not supported")
    if name == "msg":
        rule.msg = o.unquote(value)
    elif name == "sid":
        rule.sid = o.parse_int(value, 1, 2**32 - 1)
    elif name == "rev":
        rule.rev = o.parse_int(value, 0, 2**32 - 1)
    elif name == "gid":
        rule.gid = o.parse_int(value, 0, 2**32 - 1)
    elif name == "classtype":
        if value.strip() not in CLASSIFICATIONS:
            raise RuleParseError(f"unknown classtype {value.strip()!r}")
        rule.classtype = value.strip()
    elif name == "priority":
        rule.priority = o.parse_int(value, 1, 255)
    elif name == "target":
        if value.strip() not in ("src_ip", "dest_ip"):
            raise RuleParseError(f"target must be src_ip or dest_ip, not {value!r}")
        rule.target = value.strip()
    elif name == "dsize":
        rule.dsize = o.parse_num_check(value, 65535)
    elif name == "itype":
        rule.itype = o.parse_num_check(value, 255)
    elif name == "icode":
        rule.icode = o.parse_num_check(value, 255)
    elif name == "ttl":
        rule.ttl = o.parse_num_check(value, 255)
    elif name == "icmp_id":
        rule.icmp_id = o.parse_int(value, 0, 65535)
    elif name == "icmp_seq":
        rule.icmp_seq = o.parse_int(value, 0, 65535)
    elif name == "seq":
        rule.tcp_seq = o.parse_int(value, 0, 2**32 - 1)
    elif name == "ack":
        rule.tcp_ack = o.parse_int(value, 0, 2**32 - 1)
    elif name == "window":
        v = value.strip()
        rule.window = (v.startswith("!"), o.parse_int(v.lstrip("!"), 0, 65535))
    elif name == "ip_proto":
        v = value.strip()
        op = "eq"
        for prefix, po in (("!", "ne"), ("<", "lt"), (">", "gt")):
            if v.startswith(prefix):
                op, v = po, v[1:]
        names = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58, "gre": 47}
        rule.ip_proto = (op, names[v.lower()] if v.lower() in names else o.parse_int(v, 0, 255))
    elif name == "flags":
        rule.flags = o.parse_flags(value)
    elif name == "flow":
        _flow(rule, value)
    elif name == "flowbits":
        fb = o.parse_flowbits(value)
        if fb.cmd == "noalert":
            rule.noalert = True
        else:
            rule.flowbits.append(fb)
    elif name == "flowint":
        rule.flowints.append(o.parse_flowint(value))
    elif name in ("threshold", "detection_filter"):
        if rule.threshold is not None:
            raise RuleParseError("threshold and detection_filter cannot share a rule")
        rule.threshold = o.parse_threshold(value, name)
    else:
        raise UnsupportedRuleError(f"keyword {name!r} not supported")


def _flow(rule: Rule, value: str) -> None:
    for part in value.split(","):
        p = part.strip().lower()
        if p in ("to_server", "from_client"):
            rule.flow_dir = 1
        elif p in ("to_client", "from_server"):
            rule.flow_dir = 2
        elif p in ("established", "not_established", "stateless"):
            rule.flow_state = p
        elif p in ("no_frag", "only_frag"):
            rule.flow_frag = p
        elif p in ("only_stream", "no_stream"):
            raise UnsupportedRuleError(f"flow:{p} needs stream reassembly")
        else:
            raise RuleParseError(f"unknown flow option {p!r}")


def _content_mod(c: Content, name: str, value: str | None) -> None:
    if name == "nocase":
        c.nocase = True
        return
    if name == "fast_pattern":
        if value is not None and value.strip() != "only":
            raise UnsupportedRuleError("fast_pattern with offset,length not supported")
        c.fast_pattern = True
        return
    if name == "startswith":
        c.startswith = True
        return
    if name == "endswith":
        c.endswith = True
        return
    if value is None:
        raise RuleParseError(f"{name} needs a value")
    if c.negated and name in ("startswith", "endswith"):
        raise RuleParseError(f"{name} cannot apply to a negated content")
    if name == "offset":
        c.offset = o.parse_int_or_var(value, 0, 65535)
    elif name == "depth":
        c.depth = o.parse_int_or_var(value, 1, 65535)
    elif name == "distance":
        c.distance = o.parse_int_or_var(value, -65535, 65535)
    else:
        c.within = o.parse_int_or_var(value, 1, 65535)


def _check_steps(rule: Rule) -> None:
    names: set[str] = set()
    from ids.engine.rules.model import ByteExtract

    for step in rule.steps:
        if isinstance(step, Content):
            if step.relative and (step.offset is not None or step.depth is not None):
                raise RuleParseError("content mixes offset/depth with distance/within")
            if step.startswith and (step.offset is not None or step.relative):
                raise RuleParseError("startswith cannot be combined with offset/distance")
            if isinstance(step.within, int) and step.within < len(step.pattern):
                raise RuleParseError("within is shorter than the content")
            if isinstance(step.depth, int) and step.depth < len(step.pattern):
                raise RuleParseError("depth is shorter than the content")
            for v in (step.offset, step.depth, step.distance, step.within):
                if isinstance(v, str) and v not in names:
                    raise RuleParseError(f"unknown byte_extract variable {v!r}")
        elif isinstance(step, ByteExtract):
            names.add(step.name)
        else:
            for attr in ("nbytes", "value", "offset", "position"):
                v = getattr(step, attr, None)
                if isinstance(v, str) and v not in names:
                    raise RuleParseError(f"unknown byte_extract variable {v!r}")


def parse_rules(text: str, variables: Mapping[str, str] | None = None) -> RuleSet:
    """Parse a rules file's text; comments and blank lines are skipped, a trailing
    backslash continues a rule on the next line. Never raises for a bad rule: each failure
    is collected in `RuleSet.errors`."""
    result = RuleSet()
    pending = ""
    start = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not pending:
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            start = lineno
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        full = pending + line
        pending = ""
        try:
            rule = parse_rule(full, variables, start)
        except RuleParseError as exc:
            result.errors.append(exc)
            continue
        rule.order = len(result.rules)
        result.rules.append(rule)
    if pending:
        result.errors.append(RuleParseError("file ends inside a continued rule", None, start))
    return result
