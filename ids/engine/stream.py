"""Bounded TCP stream tails, so content split across segments is still found.

For each TCP flow direction the engine keeps the last `tail_bytes` of in-order payload
(sequence numbers checked; retransmissions ignored; a gap restarts the tail). When a packet
arrives, the prefilter scans only the boundary region (the tail's last L-1 bytes and the
payload's first L-1 bytes, L = longest prefilter pattern), so the common case costs one
tiny scan. Rules found there are evaluated on tail + payload and count as matching this
packet only when they do not already match on the tail alone (so a match is reported once,
on the packet that completes it).

Only position-independent rules take part (`stream_capable`): no absolute offset/depth,
startswith, anchored pcre, absolute byte_*/isdataat, or dsize, since positions in the
window are not stream offsets; `tcp-pkt` rules never do. Memory per flow is bounded by
2 x `tail_bytes`.
"""

from __future__ import annotations

from ids.engine.flow import Flow
from ids.engine.packet import TCP_SYN
from ids.engine.rules.model import ByteExtract, ByteJump, ByteTest, Content, IsDataAt, Pcre, Rule


def stream_capable(rule: Rule) -> bool:
    """True when `rule` may match across TCP segment boundaries."""
    if rule.proto == "tcp-pkt" or rule.dsize is not None or not rule.steps:
        return False
    if rule.ip_protos is not None and 6 not in rule.ip_protos:
        return False
    for step in rule.steps:
        if isinstance(step, Content):
            if step.offset is not None or step.depth is not None or step.startswith:
                return False
            if step.endswith:
                return False
        elif isinstance(step, Pcre):
            src = step.regex.pattern
            if step.anchored or src.startswith(b"^") or src.endswith(b"$"):
                return False
        elif isinstance(step, ByteTest | ByteJump | ByteExtract | IsDataAt) and not step.relative:
            return False
    return True


def stream_tail(flow: Flow, to_server: bool, seq: int) -> bytes:
    """The in-order payload tail that a segment starting at `seq` continues (else empty)."""
    tails = flow.tails
    nxt = flow.next_seq
    if tails is None or nxt is None:
        return b""
    d = 0 if to_server else 1
    return tails[d] if nxt[d] == seq else b""


def update_tail(
    flow: Flow, to_server: bool, seq: int, flags: int, payload: bytes, tail_bytes: int
) -> None:
    """Append an in-order segment to the direction's tail (bounded to `tail_bytes`)."""
    tails = flow.tails
    nxt = flow.next_seq
    if tails is None or nxt is None:
        if not payload:
            return
        tails = flow.tails = [b"", b""]
        nxt = flow.next_seq = [-1, -1]
    d = 0 if to_server else 1
    if flags & TCP_SYN:
        seq = (seq + 1) & 0xFFFFFFFF
    if not payload:
        if nxt[d] < 0 and flags & TCP_SYN:
            nxt[d] = seq
        return
    expected = nxt[d]
    if expected >= 0 and seq != expected:
        if (seq - expected) & 0xFFFFFFFF > 0x7FFFFFFF:
            return  # retransmission or overlap of data already seen
        tails[d] = b""  # a gap: restart
    tails[d] = (tails[d] + payload)[-tail_bytes:]
    nxt[d] = (seq + len(payload)) & 0xFFFFFFFF
