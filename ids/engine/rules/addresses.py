"""Rule header address and port groups: vars, negation, CIDR lists, port lists and ranges.

Grammar (Suricata's): `any`, a single address or CIDR, `$VAR`, `!group`, `[g1, g2, ...]`
nested to any depth; ports likewise with `N`, `N:M`, `N:`, `:M`. A list matches when any of
its positive members matches (or it has none) and none of its negated members does.

Invariant: a parsed group is a tuple tree evaluated without recursion into text, so matching
costs a few integer comparisons. `None` stands for `any`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping

# Node forms: ("net", version, network_int, mask_int) | ("range", lo, hi) |
#             ("not", node) | ("list", (node, ...))
Node = tuple[object, ...]

DEFAULT_ADDRESS_VARS: dict[str, str] = {
    "HOME_NET": "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]",
    "EXTERNAL_NET": "!$HOME_NET",
    **{
        name: "$HOME_NET"
        for name in (
            "HTTP_SERVERS",
            "SMTP_SERVERS",
            "SQL_SERVERS",
            "DNS_SERVERS",
            "TELNET_SERVERS",
            "AIM_SERVERS",
            "DC_SERVERS",
            "DNP3_SERVER",
            "DNP3_CLIENT",
            "MODBUS_CLIENT",
            "MODBUS_SERVER",
            "ENIP_CLIENT",
            "ENIP_SERVER",
        )
    },
}

DEFAULT_PORT_VARS: dict[str, str] = {
    "HTTP_PORTS": "80",
    "SHELLCODE_PORTS": "!80",
    "ORACLE_PORTS": "1521",
    "SSH_PORTS": "22",
    "DNP3_PORTS": "20000",
    "MODBUS_PORTS": "502",
    "FILE_DATA_PORTS": "[$HTTP_PORTS,110,143]",
    "FTP_PORTS": "21",
    "GENEVE_PORTS": "6081",
    "VXLAN_PORTS": "4789",
    "TEREDO_PORTS": "3544",
}

_MAX_DEPTH = 16


class GroupError(ValueError):
    """A header address or port group is malformed (message says why)."""


def _split_list(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    cur = ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise GroupError("unbalanced ']'")
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if depth:
        raise GroupError("unbalanced '['")
    parts.append(cur.strip())
    if any(not p for p in parts):
        raise GroupError("empty list member")
    return parts


def _parse_group(
    text: str,
    variables: Mapping[str, str],
    depth: int,
    kind: str,
    leaf: Callable[[str], Node],
) -> Node | None:
    """The grammar address and port groups share: ``any``, ``!x``, ``$VAR``, ``[a, b]``;
    ``leaf`` parses one address or port. None means any. Raises GroupError."""
    if depth > _MAX_DEPTH:
        raise GroupError(f"{kind} group nested too deeply (or a var refers to itself)")
    text = text.strip()
    if not text:
        raise GroupError(f"empty {kind}")
    if text == "any":
        return None
    if text.startswith("!"):
        inner = _parse_group(text[1:], variables, depth + 1, kind, leaf)
        if inner is None:
            raise GroupError("'!any' matches nothing")
        return ("not", inner)
    if text.startswith("$"):
        name = text[1:]
        if name not in variables:
            raise GroupError(f"unknown {kind} var ${name}")
        return _parse_group(variables[name], variables, depth + 1, kind, leaf)
    if text.startswith("["):
        if not text.endswith("]"):
            raise GroupError(f"unterminated list {text!r}")
        members = [
            _parse_group(p, variables, depth + 1, kind, leaf) for p in _split_list(text[1:-1])
        ]
        if any(m is None for m in members):
            return None if all(m is None or m[0] != "not" for m in members) else _any_list(members)
        return ("list", tuple(m for m in members if m is not None))
    return leaf(text)


def parse_address(text: str, variables: Mapping[str, str], _depth: int = 0) -> Node | None:
    """Parse an address group; None means any. Raises GroupError."""
    return _parse_group(text, variables, _depth, "address", _address_leaf)


def _address_leaf(text: str) -> Node:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise GroupError(f"bad address {text!r}") from exc
    full = (1 << net.max_prefixlen) - 1
    mask = full ^ ((1 << (net.max_prefixlen - net.prefixlen)) - 1)
    return ("net", net.version, int(net.network_address), mask)


def _any_list(members: list[Node | None]) -> Node:
    negs = tuple(m for m in members if m is not None and m[0] == "not")
    return ("list", (("any",), *negs))


def parse_ports(text: str, variables: Mapping[str, str], _depth: int = 0) -> Node | None:
    """Parse a port group; None means any. Raises GroupError."""
    return _parse_group(text, variables, _depth, "port", _port_leaf)


def _port_leaf(text: str) -> Node:
    if ":" in text:
        lo_s, hi_s = text.split(":", 1)
        lo = _port(lo_s) if lo_s.strip() else 0
        hi = _port(hi_s) if hi_s.strip() else 65535
        if lo > hi:
            raise GroupError(f"port range {text!r} is reversed")
        return ("range", lo, hi)
    p = _port(text)
    return ("range", p, p)


def _port(text: str) -> int:
    text = text.strip()
    if not text.isdigit() or int(text) > 65535:
        raise GroupError(f"bad port {text!r}")
    return int(text)


def match_address(node: Node, addr: bytes) -> bool:
    """True when `addr` (4 or 16 raw bytes) is in the group."""
    kind = node[0]
    if kind == "net":
        ver = 4 if len(addr) == 4 else 6
        return node[1] == ver and (int.from_bytes(addr, "big") & node[3]) == node[2]  # type: ignore[operator]
    if kind == "any":
        return True
    if kind == "not":
        return not match_address(node[1], addr)  # type: ignore[arg-type]
    return _match_list(node, addr, match_address)


def match_port(node: Node, port: int) -> bool:
    """True when `port` is in the group."""
    kind = node[0]
    if kind == "range":
        return node[1] <= port <= node[2]  # type: ignore[operator]
    if kind == "any":
        return True
    if kind == "not":
        return not match_port(node[1], port)  # type: ignore[arg-type]
    return _match_list(node, port, match_port)


def _match_list(node: Node, value: object, fn: object) -> bool:
    members: tuple[Node, ...] = node[1]  # type: ignore[assignment]
    positive = False
    has_positive = False
    for m in members:
        if m[0] == "not":
            if not fn(m, value):  # type: ignore[operator]
                return False
        else:
            has_positive = True
            if not positive and fn(m, value):  # type: ignore[operator]
                positive = True
    return positive or not has_positive
