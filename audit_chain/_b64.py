"""Strict standard base64 (RFC 4648 section 4) for every format audit_chain parses.

Invariant: :func:`b64decode_strict` accepts only canonical encodings (padding present, no
characters outside the alphabet, no non-zero trailing bits), so each value has exactly one
textual form and re-encoding a parsed value reproduces the input.
"""

from __future__ import annotations

import base64
import binascii

from audit_chain.errors import FormatError


def b64decode_strict(value: object, what: str, error: type[FormatError], reason: str) -> bytes:
    """Decode canonical base64 or raise ``error(..., reason=reason)`` naming ``what``."""
    if not isinstance(value, str):
        raise error(f"{what} must be a base64 string", reason=reason)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise error(f"{what} is not base64", reason=reason) from exc
    if base64.b64encode(raw).decode() != value:
        raise error(f"{what} is not canonical base64", reason=reason)
    return raw
