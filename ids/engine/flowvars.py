"""Per-flow variables set and tested by rules: `flowbits` and `flowint`.

Invariants: conditions (isset, isnotset, flowint comparisons) are evaluated before a rule
matches; updates (set, unset, toggle, flowint =, +, -) are applied only after the whole rule
matched. A packet without a flow sees every bit unset and every int unset. Flowint values
stay within 0..2**32-1 (+ wraps, - floors at 0).
"""

from __future__ import annotations

from ids.engine.flow import Flow
from ids.engine.rules.model import Rule


def flowbits_ok(rule: Rule, flow: Flow | None) -> bool:
    """True when every flowbits condition of `rule` holds for `flow`."""
    bits = flow.flowbits if flow is not None else set()
    for op in rule.flowbits:
        if op.cmd == "isset":
            hits = [n in bits for n in op.names]
            if not (any(hits) if op.any_of else all(hits)):
                return False
        elif op.cmd == "isnotset":
            misses = [n not in bits for n in op.names]
            if not (any(misses) if op.any_of else all(misses)):
                return False
    return True


def apply_flowbits(rule: Rule, flow: Flow) -> None:
    """Apply the set/unset/toggle commands of a matched rule."""
    bits = flow.flowbits
    for op in rule.flowbits:
        if op.cmd == "set":
            bits.update(op.names)
        elif op.cmd == "unset":
            bits.difference_update(op.names)
        elif op.cmd == "toggle":
            for n in op.names:
                if n in bits:
                    bits.discard(n)
                else:
                    bits.add(n)


def _value(v: int | str | None, ints: dict[str, int]) -> int | None:
    if isinstance(v, str):
        return ints.get(v)
    return v


_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def flowints_ok(rule: Rule, flow: Flow | None) -> bool:
    """True when every flowint condition of `rule` holds for `flow`."""
    ints = flow.flowints if flow is not None else {}
    for op in rule.flowints:
        if not op.is_check:
            continue
        cur = ints.get(op.name)
        if op.op == "isset":
            ok = cur is not None
        elif op.op == "notset":
            ok = cur is None
        else:
            want = _value(op.value, ints)
            ok = cur is not None and want is not None and _COMPARE[op.op](cur, want)
        if not ok:
            return False
    return True


def apply_flowints(rule: Rule, flow: Flow) -> None:
    """Apply the =, + and - updates of a matched rule."""
    ints = flow.flowints
    for op in rule.flowints:
        if op.is_check:
            continue
        val = _value(op.value, ints)
        if val is None:
            continue
        if op.op == "=":
            ints[op.name] = val & 0xFFFFFFFF
        elif op.op == "+":
            ints[op.name] = (ints.get(op.name, 0) + val) & 0xFFFFFFFF
        else:
            ints[op.name] = max(ints.get(op.name, 0) - val, 0)
