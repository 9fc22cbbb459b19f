"""Parsed rule model: header groups, payload inspection steps and packet/flow conditions.

Invariants: a `Rule` is fully built by the parser before use; every keyword it carries is
one the matcher applies (unsupported keywords never reach a `Rule`). Byte-extract variables
are referred to by name (`str`) in numeric fields and resolved at match time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ids.engine.rules.addresses import Node

IntOrVar = int | str


@dataclass(slots=True)
class Content:
    """`content` and its modifiers."""

    pattern: bytes
    negated: bool = False
    nocase: bool = False
    offset: IntOrVar | None = None
    depth: IntOrVar | None = None
    distance: IntOrVar | None = None
    within: IntOrVar | None = None
    startswith: bool = False
    endswith: bool = False
    fast_pattern: bool = False

    @property
    def relative(self) -> bool:
        """True when positioned relative to the previous match."""
        return self.distance is not None or self.within is not None


@dataclass(slots=True)
class Pcre:
    """`pcre` translated to a Python byte regex."""

    regex: re.Pattern[bytes]
    negated: bool = False
    relative: bool = False
    anchored: bool = False
    source: str = ""


@dataclass(slots=True)
class ByteTest:
    """`byte_test`: compare bytes read at an offset with a value."""

    nbytes: IntOrVar
    op: str
    negated: bool
    value: IntOrVar
    offset: IntOrVar
    relative: bool = False
    little: bool = False
    base: int = 0  # 0: binary; 8/10/16: string
    bitmask: int = 0


@dataclass(slots=True)
class ByteJump:
    """`byte_jump`: read a length and move the detection pointer."""

    nbytes: IntOrVar
    offset: IntOrVar
    relative: bool = False
    little: bool = False
    base: int = 0
    multiplier: int = 1
    align: bool = False
    from_beginning: bool = False
    from_end: bool = False
    post_offset: int = 0
    bitmask: int = 0


@dataclass(slots=True)
class ByteExtract:
    """`byte_extract`: read bytes into a named variable."""

    nbytes: int
    offset: int
    name: str
    relative: bool = False
    little: bool = False
    base: int = 0
    multiplier: int = 1
    align: int = 0
    bitmask: int = 0


@dataclass(slots=True)
class IsDataAt:
    """`isdataat`: data present at a position."""

    position: IntOrVar
    relative: bool = False
    negated: bool = False


Step = Content | Pcre | ByteTest | ByteJump | ByteExtract | IsDataAt

NumCheck = tuple[str, int, int]
"""(operator, a, b): eq, ne, lt, gt, le, ge, or range (a < x < b)."""


@dataclass(slots=True)
class Threshold:
    """`threshold` (type limit/threshold/both) or `detection_filter` (type detection_filter)."""

    type: str
    track: str
    count: int
    seconds: int


@dataclass(slots=True)
class FlowbitOp:
    """One `flowbits` command; `names` holds one name, or several joined by | or &."""

    cmd: str
    names: tuple[str, ...] = ()
    any_of: bool = False


@dataclass(slots=True)
class FlowintOp:
    """One `flowint` command: a check (isset, notset, ==, !=, <, >, <=, >=) or an update
    (=, +, -); `value` is an integer or another flowint's name."""

    name: str
    op: str
    value: int | str | None = None

    @property
    def is_check(self) -> bool:
        """True for conditions, False for updates."""
        return self.op not in ("=", "+", "-")


@dataclass(slots=True)
class Rule:
    """One parsed Suricata rule."""

    action: str
    proto: str
    src: Node | None
    sport: Node | None
    dst: Node | None
    dport: Node | None
    bidirectional: bool
    sid: int
    line: int = 0
    text: str = ""
    rev: int = 0
    gid: int = 1
    msg: str = ""
    classtype: str = ""
    category: str = ""
    priority: int = 3
    app_proto: str = ""
    ip_protos: frozenset[int] | None = None
    steps: list[Step] = field(default_factory=list)
    dsize: NumCheck | None = None
    itype: NumCheck | None = None
    icode: NumCheck | None = None
    icmp_id: int | None = None
    icmp_seq: int | None = None
    ttl: NumCheck | None = None
    ip_proto: tuple[str, int] | None = None
    tcp_seq: int | None = None
    tcp_ack: int | None = None
    window: tuple[bool, int] | None = None
    flags: tuple[str, int, int] | None = None  # (mode, flags, mask)
    flow_dir: int = 0  # 0 any, 1 to_server, 2 to_client
    flow_state: str = ""  # "", established, not_established, stateless
    flow_frag: str = ""  # "", no_frag, only_frag
    flowbits: list[FlowbitOp] = field(default_factory=list)
    flowints: list[FlowintOp] = field(default_factory=list)
    threshold: Threshold | None = None
    noalert: bool = False
    target: str = ""
    order: int = 0
    prefilter: Content | None = None
    metadata: list[str] = field(default_factory=list)

    @property
    def has_payload_steps(self) -> bool:
        """True when the rule inspects the payload."""
        return bool(self.steps)
