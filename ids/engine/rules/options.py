"""Parsers for individual rule option values (content, pcre, byte_*, numbers, flags, ...).

Every function raises `OptionError` (a ValueError) with a human-readable reason; the rule
parser turns it into a `RuleParseError` carrying the sid and line.
"""

from __future__ import annotations

import re

from ids.engine.rules.model import (
    ByteExtract,
    ByteJump,
    ByteTest,
    FlowbitOp,
    FlowintOp,
    IntOrVar,
    IsDataAt,
    NumCheck,
    Pcre,
    Threshold,
)

MAX_CONTENT_BYTES = 65_535
_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class OptionError(ValueError):
    """A rule option value is malformed."""


class UnsupportedOption(OptionError):
    """A rule option value is well formed but uses something the engine does not apply."""


def unquote(value: str) -> str:
    """Strip surrounding double quotes and undo backslash escapes of `" ; \\ :`."""
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = value[1:-1]
    elif value.startswith('"') or value.endswith('"'):
        raise OptionError(f"unbalanced quotes in {value!r}")
    out = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in '";\\:':
            out.append(value[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_content(value: str) -> tuple[bytes, bool]:
    """Parse a content value (`"abc|0d 0a|"`, optionally `!"..."`): (bytes, negated)."""
    value = value.strip()
    negated = value.startswith("!")
    if negated:
        value = value[1:].strip()
    if not (len(value) >= 2 and value[0] == '"' and value[-1] == '"'):
        raise OptionError("content must be a double-quoted string")
    text = unquote(value)
    out = bytearray()
    parts = text.split("|")
    if len(parts) % 2 == 0:
        raise OptionError("unterminated |hex| section in content")
    for i, part in enumerate(parts):
        if i % 2 == 0:
            try:
                out += part.encode("latin-1")
            except UnicodeEncodeError as exc:
                raise OptionError("content has characters outside latin-1") from exc
        else:
            hexs = part.replace(" ", "")
            if len(hexs) % 2 or not all(c in "0123456789abcdefABCDEF" for c in hexs):
                raise OptionError(f"bad hex bytes |{part}| in content")
            out += bytes.fromhex(hexs)
    if not out:
        raise OptionError("empty content")
    if len(out) > MAX_CONTENT_BYTES:
        raise OptionError("content too long")
    return bytes(out), negated


def parse_int(value: str, lo: int = -(2**63), hi: int = 2**64) -> int:
    """Parse a decimal or 0x-hex integer within [lo, hi]."""
    v = value.strip()
    try:
        n = int(v, 16) if v.lower().startswith(("0x", "-0x")) else int(v, 10)
    except ValueError as exc:
        raise OptionError(f"not a number: {value!r}") from exc
    if not lo <= n <= hi:
        raise OptionError(f"number {n} out of range [{lo}, {hi}]")
    return n


def parse_int_or_var(value: str, lo: int = -(2**31), hi: int = 2**32) -> IntOrVar:
    """An integer, or a byte_extract variable name."""
    v = value.strip()
    if _VAR_RE.match(v) and not v.lower().startswith("0x"):
        return v
    return parse_int(v, lo, hi)


def parse_num_check(value: str, hi: int = 2**32) -> NumCheck:
    """Parse `N`, `!N`, `<N`, `>N`, `<=N`, `>=N`, `N<>M` or `N-M` (exclusive range)."""
    v = value.strip().replace(" ", "")
    if "<>" in v:
        a, b = v.split("<>", 1)
        lo_n, hi_n = parse_int(a, 0, hi), parse_int(b, 0, hi)
        if lo_n >= hi_n:
            raise OptionError(f"empty range {value!r}")
        return ("range", lo_n, hi_n)
    for prefix, op in (("<=", "le"), (">=", "ge"), ("<", "lt"), (">", "gt"), ("!", "ne")):
        if v.startswith(prefix):
            return (op, parse_int(v[len(prefix) :], 0, hi), 0)
    if "-" in v[1:]:
        a, b = v.split("-", 1)
        lo_n, hi_n = parse_int(a, 0, hi), parse_int(b, 0, hi)
        if lo_n >= hi_n:
            raise OptionError(f"empty range {value!r}")
        return ("range", lo_n, hi_n)
    return ("eq", parse_int(v, 0, hi), 0)


def num_check(check: NumCheck, x: int) -> bool:
    """Evaluate a parsed numeric check."""
    op, a, b = check
    if op == "eq":
        return x == a
    if op == "lt":
        return x < a
    if op == "gt":
        return x > a
    if op == "le":
        return x <= a
    if op == "ge":
        return x >= a
    if op == "ne":
        return x != a
    return a < x < b


_PCRE_FLAGS = {"i": re.IGNORECASE, "s": re.DOTALL, "m": re.MULTILINE, "x": re.VERBOSE}
_PCRE_ACCEPTED = set("RBOA")
_PCRE_HTTP = set("UIPQHDMCKSYVWZ")


def parse_pcre(value: str) -> Pcre:
    """Translate `"/regex/flags"` (optionally `!`-negated) into a Python byte regex."""
    v = value.strip()
    negated = v.startswith("!")
    if negated:
        v = v[1:].strip()
    text = unquote(v)
    if not text.startswith("/") or text.rfind("/") == 0:
        raise OptionError("pcre must look like /regex/flags")
    end = text.rfind("/")
    body, flags = text[1:end], text[end + 1 :]
    reflags = 0
    relative = anchored = False
    for f in flags:
        if f in _PCRE_FLAGS:
            reflags |= _PCRE_FLAGS[f]
        elif f in _PCRE_HTTP:
            raise UnsupportedOption(f"pcre modifier /{f} needs an HTTP buffer (not supported)")
        elif f in _PCRE_ACCEPTED:
            relative = relative or f == "R"
            anchored = anchored or f == "A"
        else:
            raise UnsupportedOption(f"pcre modifier /{f} not supported")
    body = re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", body)
    try:
        regex = re.compile(body.encode("latin-1"), reflags)
    except (re.error, UnicodeEncodeError, OverflowError, RecursionError) as exc:
        raise OptionError(f"pcre does not compile: {exc}") from exc
    return Pcre(regex, negated, relative, anchored, text)


def _base_and_flags(parts: list[str]) -> dict[str, object]:
    """Shared byte_* flags: relative, big/little, string + hex/dec/oct, bitmask, dce, ..."""
    out: dict[str, object] = {"relative": False, "little": False, "base": 0, "bitmask": 0}
    string = False
    base = 10
    for raw in parts:
        p = raw.strip()
        low = p.lower()
        if low == "relative":
            out["relative"] = True
        elif low == "little":
            out["little"] = True
        elif low == "big":
            out["little"] = False
        elif low == "string":
            string = True
        elif low in ("hex", "dec", "oct"):
            base = {"hex": 16, "dec": 10, "oct": 8}[low]
        elif low.startswith("bitmask"):
            out["bitmask"] = parse_int(p[7:], 0, 2**32)
        elif low == "align":
            out["align"] = True
        elif low == "from_beginning":
            out["from_beginning"] = True
        elif low == "from_end":
            out["from_end"] = True
        elif low.startswith("multiplier"):
            out["multiplier"] = parse_int(p[10:], 1, 65535)
        elif low.startswith("post_offset"):
            out["post_offset"] = parse_int(p[11:], -65535, 65535)
        elif low == "dce":
            raise UnsupportedOption("dce byte order needs DCERPC parsing (not supported)")
        else:
            raise OptionError(f"unknown flag {p!r}")
    if string:
        out["base"] = base
    return out


def _check_nbytes(nbytes: IntOrVar, base: int) -> None:
    if isinstance(nbytes, int):
        limit = 10 if base else 8
        if not 1 <= nbytes <= limit:
            raise OptionError(f"byte count {nbytes} not in 1..{limit}")


def parse_byte_test(value: str) -> ByteTest:
    """Parse `byte_test:nbytes,[!]op,value,offset[,flags...]`."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) < 4:
        raise OptionError("byte_test needs nbytes, operator, value, offset")
    nbytes = parse_int_or_var(parts[0], 1, 10)
    op = parts[1].replace(" ", "")
    negated = op.startswith("!") and op != "!="
    if negated:
        op = op[1:]
    if op not in ("<", ">", "=", "!=", "<=", ">=", "&", "^"):
        raise OptionError(f"byte_test operator {parts[1]!r} not supported")
    flags = _base_and_flags(parts[4:])
    _check_nbytes(nbytes, int(flags["base"]))  # type: ignore[call-overload]
    return ByteTest(
        nbytes=nbytes,
        op=op,
        negated=negated,
        value=parse_int_or_var(parts[2], 0, 2**64),
        offset=parse_int_or_var(parts[3], -65535, 2**32),
        relative=bool(flags["relative"]),
        little=bool(flags["little"]),
        base=int(flags["base"]),  # type: ignore[call-overload]
        bitmask=int(flags["bitmask"]),  # type: ignore[call-overload]
    )


def parse_byte_jump(value: str) -> ByteJump:
    """Parse `byte_jump:nbytes,offset[,flags...]`."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) < 2:
        raise OptionError("byte_jump needs nbytes and offset")
    nbytes = parse_int_or_var(parts[0], 0, 10)
    flags = _base_and_flags(parts[2:])
    if isinstance(nbytes, int) and nbytes != 0:
        _check_nbytes(nbytes, int(flags["base"]))  # type: ignore[call-overload]
    return ByteJump(
        nbytes=nbytes,
        offset=parse_int_or_var(parts[1], -65535, 2**32),
        relative=bool(flags["relative"]),
        little=bool(flags["little"]),
        base=int(flags["base"]),  # type: ignore[call-overload]
        multiplier=int(flags.get("multiplier", 1)),  # type: ignore[call-overload]
        align=bool(flags.get("align", False)),
        from_beginning=bool(flags.get("from_beginning", False)),
        from_end=bool(flags.get("from_end", False)),
        post_offset=int(flags.get("post_offset", 0)),  # type: ignore[call-overload]
        bitmask=int(flags["bitmask"]),  # type: ignore[call-overload]
    )


def parse_byte_extract(value: str) -> ByteExtract:
    """Parse `byte_extract:nbytes,offset,name[,flags...]`."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) < 3:
        raise OptionError("byte_extract needs nbytes, offset and a name")
    if not _VAR_RE.match(parts[2]):
        raise OptionError(f"bad byte_extract variable name {parts[2]!r}")
    rest = []
    align = 0
    for p in parts[3:]:
        if p.lower().startswith("align"):
            align = parse_int(p[5:], 2, 4)
        else:
            rest.append(p)
    flags = _base_and_flags(rest)
    nbytes = parse_int(parts[0], 1, 10)
    _check_nbytes(nbytes, int(flags["base"]))  # type: ignore[call-overload]
    return ByteExtract(
        nbytes=nbytes,
        offset=parse_int(parts[1], -65535, 65535),
        name=parts[2],
        relative=bool(flags["relative"]),
        little=bool(flags["little"]),
        base=int(flags["base"]),  # type: ignore[call-overload]
        multiplier=int(flags.get("multiplier", 1)),  # type: ignore[call-overload]
        align=align,
        bitmask=int(flags["bitmask"]),  # type: ignore[call-overload]
    )


def parse_isdataat(value: str) -> IsDataAt:
    """Parse `isdataat:[!]N[,relative]`."""
    parts = [p.strip() for p in value.split(",")]
    first = parts[0]
    negated = first.startswith("!")
    if negated:
        first = first[1:]
    relative = False
    for p in parts[1:]:
        if p.lower() == "relative":
            relative = True
        elif p.lower() != "rawbytes":
            raise OptionError(f"unknown isdataat flag {p!r}")
    return IsDataAt(parse_int_or_var(first, 0, 65535), relative, negated)


def parse_threshold(value: str, kind: str) -> Threshold:
    """Parse `threshold` (kind "threshold") or `detection_filter` (kind "detection_filter")."""
    fields: dict[str, str] = {}
    for part in value.split(","):
        bits = part.strip().split(None, 1)
        if len(bits) != 2:
            raise OptionError(f"bad {kind} field {part.strip()!r}")
        fields[bits[0].lower()] = bits[1].strip()
    ttype = "detection_filter" if kind == "detection_filter" else fields.get("type", "")
    if ttype not in ("limit", "threshold", "both", "detection_filter"):
        raise OptionError(f"{kind} type {ttype!r} not supported")
    track = fields.get("track", "")
    if track not in ("by_src", "by_dst", "by_rule", "by_both", "by_flow"):
        raise OptionError(f"{kind} track {track!r} not supported")
    if "count" not in fields or "seconds" not in fields:
        raise OptionError(f"{kind} needs count and seconds")
    return Threshold(
        ttype, track, parse_int(fields["count"], 1, 2**31), parse_int(fields["seconds"], 1, 2**31)
    )


def parse_flowbits(value: str) -> FlowbitOp:
    """Parse `flowbits:cmd[,name]`; names may be `a|b` (isset any) or `a&b` (all)."""
    parts = [p.strip() for p in value.split(",")]
    cmd = parts[0].lower()
    if cmd == "noalert":
        if len(parts) != 1:
            raise OptionError("flowbits:noalert takes no name")
        return FlowbitOp("noalert")
    if cmd not in ("set", "isset", "isnotset", "unset", "toggle"):
        raise OptionError(f"flowbits command {cmd!r} not supported")
    if len(parts) != 2 or not parts[1]:
        raise OptionError(f"flowbits:{cmd} needs one name")
    name = parts[1]
    any_of = "|" in name
    names = tuple(n.strip() for n in re.split(r"[|&]", name))
    if any(not n for n in names) or ("|" in name and "&" in name):
        raise OptionError(f"bad flowbit name {name!r}")
    if len(names) > 1 and cmd not in ("isset", "isnotset", "set", "unset", "toggle"):
        raise OptionError(f"flowbits:{cmd} takes one name")
    return FlowbitOp(cmd, names, any_of)


_TCP_FLAG_BITS = {
    "F": 0x01,
    "S": 0x02,
    "R": 0x04,
    "P": 0x08,
    "A": 0x10,
    "U": 0x20,
    "E": 0x40,
    "C": 0x80,
    "2": 0x40,
    "1": 0x80,
}


def parse_flags(value: str) -> tuple[str, int, int]:
    """Parse `flags:[!|*|+]FSRPAUCE0[,mask]` (modifier before or after): (mode, bits, mask)."""
    parts = value.split(",")
    text = parts[0].strip()
    mode = "exact"
    for ch, m in (("!", "not"), ("*", "any"), ("+", "all")):
        if text.startswith(ch) or text.endswith(ch):
            mode = m
            text = text.strip(ch)
            break
    bits = 0
    for ch in text.upper():
        if ch == "0":
            continue
        if ch not in _TCP_FLAG_BITS:
            raise OptionError(f"unknown TCP flag {ch!r}")
        bits |= _TCP_FLAG_BITS[ch]
    ignore = 0
    if len(parts) > 1:
        for ch in parts[1].strip().upper():
            if ch not in _TCP_FLAG_BITS:
                raise OptionError(f"unknown TCP flag {ch!r} in mask")
            ignore |= _TCP_FLAG_BITS[ch]
    if not text:
        raise OptionError("flags needs at least one flag (or 0)")
    return mode, bits, 0xFF & ~ignore


def flags_match(spec: tuple[str, int, int], flags: int) -> bool:
    """Evaluate a parsed `flags` check against a TCP flags byte."""
    mode, bits, mask = spec
    f = flags & mask
    if mode == "exact":
        return f == bits
    if mode == "all":
        return f & bits == bits
    if mode == "any":
        return bool(f & bits) or bits == 0
    return f & bits == 0


_FLOWINT_OPS = ("isset", "notset", "isnotset", "==", "!=", "<=", ">=", "<", ">", "=", "+", "-")


def parse_flowint(value: str) -> FlowintOp:
    """Parse `flowint:name,op[,value]` (op: isset, notset, isnotset, ==, !=, <, >, <=, >=,
    =, +, -; value an integer or another flowint name)."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) < 2 or not _VAR_RE.match(parts[0]):
        raise OptionError("flowint needs a name and an operator")
    op = parts[1]
    if op not in _FLOWINT_OPS:
        raise OptionError(f"flowint operator {op!r} not supported")
    if op in ("isset", "notset", "isnotset"):
        if len(parts) != 2:
            raise OptionError(f"flowint {op} takes no value")
        return FlowintOp(parts[0], "notset" if op == "isnotset" else op)
    if len(parts) != 3:
        raise OptionError(f"flowint {op} needs a value")
    return FlowintOp(parts[0], op, parse_int_or_var(parts[2], 0, 2**32 - 1))
