"""Payload inspection: evaluate a rule's content / pcre / byte_* / isdataat steps in order.

Semantics follow Suricata's content inspection: a detection pointer moves to the end of each
positive match; relative steps (distance/within, pcre /R, relative byte_*) start from it;
`within` bounds the match end at previous end + distance + within. When a later relative
step fails, earlier positive matches are retried at their next occurrence (backtracking),
bounded by `MAX_INSPECT_STEPS` so hostile payloads cannot explode the work.
Negated steps never move the pointer.
"""

from __future__ import annotations

from ids.engine.rules.model import (
    ByteExtract,
    ByteJump,
    ByteTest,
    Content,
    IntOrVar,
    IsDataAt,
    Pcre,
    Step,
)

MAX_INSPECT_STEPS = 3000


class _Ctx:
    __slots__ = ("budget", "buf", "lbuf", "vars")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.lbuf: bytes | None = None
        self.vars: dict[str, int] = {}
        self.budget = MAX_INSPECT_STEPS


def inspect_payload(steps: list[Step], buf: bytes) -> bool:
    """True when every step matches `buf` (the packet payload)."""
    return _match(steps, 0, _Ctx(buf), 0)


def _val(v: IntOrVar | None, ctx: _Ctx, default: int = 0) -> int:
    if v is None:
        return default
    if isinstance(v, int):
        return v
    return ctx.vars.get(v, 0)


def _read(buf: bytes, pos: int, n: int, little: bool, base: int) -> int | None:
    if pos < 0 or n < 0 or pos + n > len(buf):
        return None
    chunk = buf[pos : pos + n]
    if not base:
        return int.from_bytes(chunk, "little" if little else "big")
    digits = "0123456789abcdef"[:base]
    text = chunk.decode("latin-1").lower()
    if base == 16 and text.startswith("0x"):
        text = text[2:]
    end = 0
    while end < len(text) and text[end] in digits:
        end += 1
    if end == 0:
        return None
    return int(text[:end], base)


def _mask(val: int, mask: int) -> int:
    if not mask:
        return val
    val &= mask
    while mask and not mask & 1:
        mask >>= 1
        val >>= 1
    return val


def _match(steps: list[Step], i: int, ctx: _Ctx, prev: int) -> bool:
    while i < len(steps):
        ctx.budget -= 1
        if ctx.budget < 0:
            return False
        step = steps[i]
        buf = ctx.buf
        if isinstance(step, Content):
            pat = step.pattern
            if step.nocase:
                if ctx.lbuf is None:
                    ctx.lbuf = buf.lower()
                hay = ctx.lbuf
                pat = pat.lower()
            else:
                hay = buf
            blen = len(buf)
            if step.distance is not None or step.within is not None:
                dist = _val(step.distance, ctx)
                start = max(prev + dist, 0)
                end = blen
                if step.within is not None:
                    end = min(end, prev + dist + _val(step.within, ctx))
            else:
                start = _val(step.offset, ctx)
                end = blen
                if step.depth is not None:
                    end = min(end, start + _val(step.depth, ctx))
            if step.startswith:
                end = min(end, start + len(pat))
            if step.negated:
                if step.endswith:
                    found = end == blen and hay.endswith(pat, start, end)
                else:
                    found = hay.find(pat, start, end) != -1
                if found:
                    return False
                i += 1
                continue
            plen = len(pat)
            if step.endswith:
                pos = blen - plen
                if pos < start or blen > end or not hay.startswith(pat, pos):
                    return False
                prev = blen
                i += 1
                continue
            pos = hay.find(pat, start, end)
            if pos == -1:
                return False
            if i + 1 == len(steps):
                return True
            while pos != -1:
                if _match(steps, i + 1, ctx, pos + plen):
                    return True
                if ctx.budget < 0:
                    return False
                pos = hay.find(pat, pos + 1, end)
            return False
        if isinstance(step, Pcre):
            base = prev if step.relative else 0
            sub = buf[base:] if base else buf
            rx = step.regex
            if step.negated:
                found = (rx.match(sub) if step.anchored else rx.search(sub)) is not None
                if found:
                    return False
                i += 1
                continue
            m = rx.match(sub) if step.anchored else rx.search(sub)
            if m is None:
                return False
            while m is not None:
                if _match(steps, i + 1, ctx, base + m.end()):
                    return True
                if ctx.budget < 0 or step.anchored or m.start() + 1 > len(sub):
                    return False
                m = rx.search(sub, m.start() + 1)
                ctx.budget -= 1
            return False
        if isinstance(step, ByteTest):
            n = _val(step.nbytes, ctx)
            pos = (prev if step.relative else 0) + _val(step.offset, ctx)
            got = _read(buf, pos, n, step.little, step.base)
            if got is None:
                return False
            got = _mask(got, step.bitmask)
            want = _val(step.value, ctx)
            op = step.op
            if op == "=":
                ok = got == want
            elif op == "<":
                ok = got < want
            elif op == ">":
                ok = got > want
            elif op == "<=":
                ok = got <= want
            elif op == ">=":
                ok = got >= want
            elif op == "!=":
                ok = got != want
            elif op == "&":
                ok = (got & want) != 0
            else:
                ok = (got ^ want) != 0
            if ok == step.negated:
                return False
            i += 1
            continue
        if isinstance(step, ByteJump):
            n = _val(step.nbytes, ctx)
            pos = (prev if step.relative else 0) + _val(step.offset, ctx)
            if n == 0:
                got = 0 if 0 <= pos <= len(buf) else None
            else:
                got = _read(buf, pos, n, step.little, step.base)
            if got is None:
                return False
            got = _mask(got, step.bitmask) * step.multiplier
            if step.align and got % 4:
                got += 4 - got % 4
            if step.from_beginning:
                new = got
            elif step.from_end:
                new = len(buf) + got
            else:
                new = pos + n + got
            new += step.post_offset
            if new < 0 or new > len(buf):
                return False
            prev = new
            i += 1
            continue
        if isinstance(step, ByteExtract):
            pos = (prev if step.relative else 0) + step.offset
            got = _read(buf, pos, step.nbytes, step.little, step.base)
            if got is None:
                return False
            got = _mask(got, step.bitmask) * step.multiplier
            if step.align and got % step.align:
                got += step.align - got % step.align
            ctx.vars[step.name] = got
            prev = pos + step.nbytes
            i += 1
            continue
        if isinstance(step, IsDataAt):
            pos = _val(step.position, ctx)
            # relative: at least N bytes follow the pointer; absolute: a byte at offset N
            present = prev + pos <= len(buf) if step.relative else pos < len(buf)
            if present == step.negated:
                return False
            i += 1
            continue
        return False
    return True
