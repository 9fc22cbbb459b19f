"""SPIFFE IDs (SPIFFE-ID spec): parsing and validation, strict by design.

A node's SPIFFE ID has the shape ``spiffe://<trust-domain>/operator/<op>/node/<id>``.

Invariants (each refusal raises :class:`SpiffeIdError` with a stable ``reason``):
- the input is checked for type and length (2048 bytes) before anything else;
- only ASCII; no percent-encoding at all (``%2e`` and friends are refused, never decoded);
- the scheme is exactly ``spiffe://`` (an uppercase scheme is refused, not normalised);
- the trust domain uses ``[a-z0-9._-]`` only, at most 255 characters (so no port, no
  userinfo, no uppercase);
- path segments are non-empty, not ``.`` or ``..``, use ``[a-z0-9._-]`` only (stricter than
  the spec, which also allows uppercase), and the path has no trailing slash;
- operator names and node ids additionally start with ``[a-z0-9]`` and are at most 63
  characters, so they are safe as file names and database keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from identity.pki.errors import SpiffeIdError

SCHEME_PREFIX = "spiffe://"
MAX_SPIFFE_ID_BYTES = 2048
MAX_TRUST_DOMAIN_CHARS = 255
MAX_NAME_CHARS = 63

_TRUST_DOMAIN_RE = re.compile(r"[a-z0-9._-]+")
_SEGMENT_RE = re.compile(r"[a-z0-9._-]+")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


@dataclass(frozen=True)
class SpiffeId:
    """A validated SPIFFE ID: trust domain plus path segments."""

    trust_domain: str
    segments: tuple[str, ...]

    def __str__(self) -> str:
        path = "".join("/" + s for s in self.segments)
        return f"{SCHEME_PREFIX}{self.trust_domain}{path}"

    @property
    def uri(self) -> str:
        return str(self)


@dataclass(frozen=True)
class NodeSpiffeId:
    """A validated node SPIFFE ID ``spiffe://<trust_domain>/operator/<operator>/node/<node_id>``."""

    trust_domain: str
    operator: str
    node_id: str

    def __str__(self) -> str:
        return f"{SCHEME_PREFIX}{self.trust_domain}/operator/{self.operator}/node/{self.node_id}"

    @property
    def uri(self) -> str:
        return str(self)


def validate_trust_domain(trust_domain: object) -> str:
    """Return ``trust_domain`` if valid; raises SpiffeIdError(reason="trust_domain")."""
    if not isinstance(trust_domain, str):
        raise SpiffeIdError("trust domain must be a string", reason="type")
    if not trust_domain or len(trust_domain) > MAX_TRUST_DOMAIN_CHARS:
        raise SpiffeIdError(
            "trust domain must have 1 to 255 characters", reason="trust_domain", value=trust_domain
        )
    if "%" in trust_domain:
        raise SpiffeIdError(
            "percent-encoding is not allowed", reason="percent_encoding", value=trust_domain
        )
    if not _TRUST_DOMAIN_RE.fullmatch(trust_domain) or trust_domain in (".", ".."):
        raise SpiffeIdError(
            "trust domain may use only [a-z0-9._-]", reason="trust_domain", value=trust_domain
        )
    return trust_domain


def validate_name(name: object, *, what: str = "name") -> str:
    """Return an operator name or node id if it is in the safe alphabet.

    Raises SpiffeIdError(reason=``type``/``too_long``/``percent_encoding``/``dot_segment``/
    ``character``).
    """
    if not isinstance(name, str):
        raise SpiffeIdError(f"{what} must be a string", reason="type")
    if not name:
        raise SpiffeIdError(f"{what} is empty", reason="empty_segment")
    if len(name) > MAX_NAME_CHARS:
        raise SpiffeIdError(f"{what} is longer than 63 characters", reason="too_long", value=name)
    if "%" in name:
        raise SpiffeIdError(
            f"{what}: percent-encoding is not allowed", reason="percent_encoding", value=name
        )
    if name in (".", ".."):
        raise SpiffeIdError(f"{what} is a dot segment", reason="dot_segment", value=name)
    if not _NAME_RE.fullmatch(name):
        raise SpiffeIdError(
            f"{what} must match [a-z0-9][a-z0-9._-]*", reason="character", value=name
        )
    return name


def parse_spiffe_id(value: object) -> SpiffeId:
    """Parse any SPIFFE ID (trust domain, optional path). Raises SpiffeIdError."""
    if not isinstance(value, str):
        raise SpiffeIdError("SPIFFE ID must be a string", reason="type")
    if len(value) > MAX_SPIFFE_ID_BYTES or len(value.encode("utf-8", "replace")) > (
        MAX_SPIFFE_ID_BYTES
    ):
        raise SpiffeIdError("SPIFFE ID is longer than 2048 bytes", reason="too_long", value=value)
    if not value.isascii():
        raise SpiffeIdError("SPIFFE ID must be ASCII", reason="character", value=value)
    if "%" in value:
        raise SpiffeIdError(
            "percent-encoding is not allowed", reason="percent_encoding", value=value
        )
    if not value.startswith(SCHEME_PREFIX):
        raise SpiffeIdError("scheme must be exactly 'spiffe://'", reason="scheme", value=value)
    rest = value[len(SCHEME_PREFIX) :]
    trust_domain, slash, path = rest.partition("/")
    try:
        validate_trust_domain(trust_domain)
    except SpiffeIdError as exc:
        raise SpiffeIdError(str(exc), reason=exc.reason, value=value) from None
    if not slash:
        return SpiffeId(trust_domain, ())
    if path == "":
        raise SpiffeIdError("path has a trailing slash", reason="trailing_slash", value=value)
    segments = tuple(path.split("/"))
    for index, segment in enumerate(segments):
        if segment == "":
            if index == len(segments) - 1:
                raise SpiffeIdError(
                    "path has a trailing slash", reason="trailing_slash", value=value
                )
            raise SpiffeIdError("path has an empty segment", reason="empty_segment", value=value)
        if segment in (".", ".."):
            raise SpiffeIdError("path has a '.' or '..' segment", reason="dot_segment", value=value)
        if not _SEGMENT_RE.fullmatch(segment):
            raise SpiffeIdError(
                "path segments may use only [a-z0-9._-]", reason="character", value=value
            )
    return SpiffeId(trust_domain, segments)


def parse_node_spiffe_id(value: object, *, trust_domain: str | None = None) -> NodeSpiffeId:
    """Parse ``spiffe://<td>/operator/<op>/node/<id>``; optionally require ``trust_domain``.

    Raises SpiffeIdError (``shape`` when the path is not the node shape,
    ``other_trust_domain`` when the trust domain differs from the one required).
    """
    parsed = parse_spiffe_id(value)
    value = str(parsed)  # parse_spiffe_id never normalises, so this is the input string
    segs = parsed.segments
    if len(segs) != 4 or segs[0] != "operator" or segs[2] != "node":
        raise SpiffeIdError("path must be /operator/<op>/node/<id>", reason="shape", value=value)
    try:
        operator = validate_name(segs[1], what="operator")
        node_id = validate_name(segs[3], what="node id")
    except SpiffeIdError as exc:
        raise SpiffeIdError(str(exc), reason=exc.reason, value=value) from None
    if trust_domain is not None and parsed.trust_domain != trust_domain:
        raise SpiffeIdError(
            f"trust domain {parsed.trust_domain!r} is not {trust_domain!r}",
            reason="other_trust_domain",
            value=value,
        )
    return NodeSpiffeId(parsed.trust_domain, operator, node_id)


def node_spiffe_id(trust_domain: str, operator: str, node_id: str) -> NodeSpiffeId:
    """Build a node SPIFFE ID from parts, validating each. Raises SpiffeIdError."""
    return NodeSpiffeId(
        validate_trust_domain(trust_domain),
        validate_name(operator, what="operator"),
        validate_name(node_id, what="node id"),
    )
