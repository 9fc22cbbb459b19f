"""JWTs for humans, tenants and services (RFC 7519), EdDSA or ES256 only.

Invariants:
- Only EdDSA (Ed25519) and ES256 are accepted; ``alg: none`` and every HMAC
  algorithm are refused before any key is looked at.
- ``exp``, ``iat``, ``aud``, ``iss`` and ``sub`` are required, each checked here (pyjwt
  would accept a token without ``exp`` unless told to require it).
- ``iat`` in the future (beyond the allowed leeway) is refused.
- ``exp``, ``iat`` and ``nbf`` must be finite JSON numbers (not strings, booleans, NaN or
  infinities: a NaN ``exp`` would otherwise never expire).
- Bad input of any shape raises :class:`TokenVerificationError`, never another exception.
- Verification parses the compact JWS once, itself (canonical unpadded base64url, UTF-8
  JSON objects without NaN/Infinity, no ``crit``/``b64`` extensions) and checks the
  signature directly: pyjwt parsed every token twice and validated base64 character by
  character in Python, which cost more than the signature check. Issuing still uses pyjwt.
- Ed25519 signatures are checked by libsodium (PyNaCl), ES256 by pyca/cryptography.
  libsodium is the stricter of the two: besides a non-canonical ``S`` it refuses
  small-order and non-canonical public keys and ``R`` values, where OpenSSL accepts
  ``R = identity, S = 0`` under the identity key for every message. It is also the
  faster of the two (benchmarks/identity_pki).
- A verifier remembers the ``(alg, kid)`` of header segments it has seen on a token with a
  good signature, keyed by the exact segment text (bounded; a different spelling of the same
  header is a different key and is parsed and checked in full).
- The key is chosen by ``kid`` from a kid -> key mapping (:meth:`KeySet.keys_by_kid`,
  :func:`keys_by_kid`); an unknown or non-string ``kid`` is refused.
- Rotation: a :class:`KeySet` holds the active signing key and retired
  verification keys; a retired key verifies until its ``not_after``. Its kid -> key
  mapping is rebuilt whenever ``active`` or ``retired`` changed, so a verifier sees a
  rotation or a prune at its next token.

The clock is injected so tests control time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, cast

import jwt
import nacl.bindings
import nacl.exceptions
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from identity.errors import TokenVerificationError

ALLOWED_ALGORITHMS = ("EdDSA", "ES256")
REQUIRED_CLAIMS = ("exp", "iat", "aud", "iss", "sub")
MAX_TOKEN_BYTES = 8192
HEADER_CACHE_SIZE = 64

Clock = Callable[[], float]
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
KeySource = Callable[[], Mapping[str, "VerificationKey"]]

_ES256 = ec.ECDSA(hashes.SHA256())


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SigningKey:
    """A private key with its ``kid`` and JWS algorithm."""

    kid: str
    algorithm: str
    private_key: PrivateKey

    @classmethod
    def generate(cls, algorithm: str = "EdDSA") -> SigningKey:
        if algorithm == "EdDSA":
            key: PrivateKey = ed25519.Ed25519PrivateKey.generate()
        elif algorithm == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(
                f"unsupported algorithm {algorithm!r}; use one of {ALLOWED_ALGORITHMS}"
            )
        return cls(kid=_thumbprint(key.public_key()), algorithm=algorithm, private_key=key)

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            algorithm = "EdDSA"
        elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
            algorithm = "ES256"
        else:
            raise ValueError("signing key must be Ed25519 or EC P-256")
        return cls(kid=_thumbprint(key.public_key()), algorithm=algorithm, private_key=key)

    def to_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public(self) -> VerificationKey:
        return VerificationKey(self.kid, self.algorithm, self.private_key.public_key())


@dataclass(frozen=True)
class VerificationKey:
    """A public key with its ``kid``; ``not_after`` (epoch seconds) bounds a retired key.

    Raises ValueError when ``algorithm`` is not the key's (EdDSA: Ed25519, ES256: P-256).
    """

    kid: str
    algorithm: str
    public_key: PublicKey
    not_after: float | None = None
    # the raw 32-byte Ed25519 key libsodium takes, computed once; None for ES256
    _ed25519_raw: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        public = self.public_key
        if self.algorithm == "EdDSA" and isinstance(public, ed25519.Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            object.__setattr__(self, "_ed25519_raw", raw)
        elif not (
            self.algorithm == "ES256"
            and isinstance(public, ec.EllipticCurvePublicKey)
            and isinstance(public.curve, ec.SECP256R1)
        ):
            raise ValueError(
                f"a {self.algorithm!r} verification key must be Ed25519 (EdDSA) or P-256 (ES256)"
            )

    def verify_signature(self, signature: bytes, signing_input: bytes) -> None:
        """Check a JWS signature over ``signing_input``: Ed25519 (RFC 8037) through libsodium,
        or ES256 as R || S (RFC 7518 section 3.4). Raises cryptography's InvalidSignature."""
        # both algorithms sign with exactly 64 bytes; libsodium would otherwise split a
        # shorter or longer signature || message at another place
        if len(signature) != 64:
            raise InvalidSignature
        raw = self._ed25519_raw
        if raw is not None:
            try:
                nacl.bindings.crypto_sign_open(signature + signing_input, raw)
            except nacl.exceptions.BadSignatureError:
                raise InvalidSignature from None
            return
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        cast(ec.EllipticCurvePublicKey, self.public_key).verify(der, signing_input, _ES256)

    def to_jwk(self) -> dict[str, str]:
        jwk = _public_jwk(self.public_key)
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig"})
        return jwk


def keys_by_kid(keys: Iterable[VerificationKey]) -> Mapping[str, VerificationKey]:
    """The kid -> key mapping a :class:`TokenVerifier` looks keys up in; the first key of
    a kid wins (a :class:`KeySet` lists its active key first)."""
    index: dict[str, VerificationKey] = {}
    for key in keys:
        index.setdefault(key.kid, key)
    return MappingProxyType(index)


def _public_jwk(key: PublicKey) -> dict[str, str]:
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64u(raw)}
    numbers = key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64u(numbers.x.to_bytes(32, "big")),
        "y": _b64u(numbers.y.to_bytes(32, "big")),
    }


def _thumbprint(key: PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url)."""
    jwk = _public_jwk(key)
    required = ("crv", "kty", "x") if jwk["kty"] == "OKP" else ("crv", "kty", "x", "y")
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return _b64u(hashlib.sha256(canonical.encode()).digest())


def verification_key_from_jwk(jwk: Mapping[str, Any]) -> VerificationKey:
    """Parse one public JWK (OKP/Ed25519 or EC/P-256); raises TokenVerificationError."""
    if not isinstance(jwk, Mapping):
        raise TokenVerificationError("JWK must be an object", reason="jwk")
    try:
        kid = jwk["kid"]
        if not isinstance(kid, str) or not kid:
            raise TokenVerificationError("JWK kid must be a non-empty string", reason="jwk")
        if jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519":
            pub: PublicKey = ed25519.Ed25519PublicKey.from_public_bytes(_b64u_decode(jwk["x"]))
            alg = "EdDSA"
        elif jwk["kty"] == "EC" and jwk["crv"] == "P-256":
            x = int.from_bytes(_b64u_decode(jwk["x"]), "big")
            y = int.from_bytes(_b64u_decode(jwk["y"]), "big")
            pub = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
            alg = "ES256"
        else:
            raise TokenVerificationError("unsupported JWK key type", reason="jwk")
        not_after = jwk.get("exp")
        expires = float(not_after) if not_after is not None else None
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise TokenVerificationError(f"malformed JWK: {exc}", reason="jwk") from exc
    if expires is not None and not math.isfinite(expires):
        raise TokenVerificationError("JWK exp must be finite", reason="jwk")
    return VerificationKey(kid, alg, pub, expires)


_FLOAT_MAX = 1.7976931348623157e308


def _numeric_date(value: object, name: str) -> float:
    """RFC 7519 NumericDate: a finite JSON number (bool excluded; JSON gives exact types)."""
    if type(value) is int:
        if -_FLOAT_MAX <= value <= _FLOAT_MAX:  # float(value) would overflow otherwise
            return float(value)
    elif type(value) is float:
        if math.isfinite(value):
            return value
    else:
        raise TokenVerificationError(f"{name} must be a number", reason="malformed")
    raise TokenVerificationError(f"{name} must be finite", reason="malformed")


@dataclass
class KeySet:
    """The active signing key plus retired keys that still verify until their tokens expire."""

    active: SigningKey
    retired: list[VerificationKey] = field(default_factory=list)
    # (active, *retired) the mapping was built from, and the mapping
    _index: tuple[tuple[Any, ...], Mapping[str, VerificationKey]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def rotate(self, new: SigningKey, *, now: float, max_token_ttl: timedelta) -> None:
        """Make ``new`` active; the old key keeps verifying for ``max_token_ttl``."""
        old = self.active.public()
        self.retired.append(
            VerificationKey(
                old.kid, old.algorithm, old.public_key, now + max_token_ttl.total_seconds()
            )
        )
        self.active = new

    def prune(self, *, now: float) -> None:
        self.retired = [k for k in self.retired if k.not_after is None or k.not_after > now]

    def verification_keys(self) -> list[VerificationKey]:
        return [self.active.public(), *self.retired]

    def keys_by_kid(self) -> Mapping[str, VerificationKey]:
        """kid -> key of every key that verifies, the active key first: the key source of a
        :class:`TokenVerifier`. Rebuilt when ``active`` or ``retired`` changed since the
        last call (however they were changed), else the same read-only mapping."""
        snapshot = (self.active, *self.retired)
        index = self._index
        if index is None or index[0] != snapshot:
            index = (snapshot, keys_by_kid(self.verification_keys()))
            self._index = index
        return index[1]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        keys = []
        for key in self.verification_keys():
            jwk = key.to_jwk()
            if key.not_after is not None:
                jwk["exp"] = str(int(key.not_after))
            keys.append(jwk)
        return {"keys": keys}


@dataclass(frozen=True)
class TokenIssuer:
    """Issues JWTs signed with the key set's active key."""

    keys: KeySet
    issuer: str
    clock: Clock

    def issue(
        self,
        subject: str,
        audience: str,
        ttl: timedelta,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        if ttl.total_seconds() <= 0:
            raise ValueError("ttl must be positive")
        now = int(self.clock())
        payload: dict[str, Any] = dict(claims or {})
        payload.update(
            {
                "iss": self.issuer,
                "sub": subject,
                "aud": audience,
                "iat": now,
                "nbf": now,
                "exp": now + int(ttl.total_seconds()),
                "jti": secrets.token_urlsafe(12),
            }
        )
        key = self.keys.active
        return jwt.encode(
            payload, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid}
        )


@dataclass(frozen=True)
class TokenVerifier:
    """Verifies JWTs against a key source, issuer and audience.

    ``keys`` returns the current kid -> key mapping (``KeySet.keys_by_kid``, or
    ``lambda: mapping`` built once with :func:`keys_by_kid`); it is called on every
    verification so a rotation is seen at once.
    """

    keys: KeySource
    issuer: str
    audience: str
    clock: Clock
    leeway_s: float = 30.0
    # header segment -> (alg, kid), filled only from tokens whose signature verified
    _headers: dict[bytes, tuple[str, Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a valid token.

        Raises TokenVerificationError with a stable ``reason``: ``malformed``,
        ``algorithm``, ``unknown_kid``, ``signature``, ``expired``,
        ``not_yet_valid``, ``iat_future``, ``audience``, ``issuer``,
        ``missing_claim``.
        """
        # 1. size and shape before any parsing; each segment is canonical base64url
        if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or not token.isascii():
            raise TokenVerificationError(
                "token missing, too large or not ASCII", reason="malformed"
            )
        compact = token.encode("ascii")
        segments = compact.split(b".")
        if len(segments) != 3:
            raise TokenVerificationError("a JWS has three segments", reason="malformed")
        header_b64, payload_b64, signature_b64 = segments
        # 2. algorithm allow-list, before a key is chosen (defeats alg=none and
        # HS256-with-pubkey); a header segment seen on a verified token passed 1-2 already
        seen = self._headers.get(header_b64)
        alg, kid = _parse_header(header_b64) if seen is None else seen
        # 3. key by kid; the key's own algorithm must match the header's
        now = self.clock()
        key = self.keys().get(kid) if type(kid) is str else None
        if key is None or (key.not_after is not None and key.not_after <= now):
            raise TokenVerificationError(f"unknown key id {kid!r}", reason="unknown_kid")
        if key.algorithm != alg:
            raise TokenVerificationError("algorithm does not match the key", reason="algorithm")
        # 4. signature over the ASCII signing input (RFC 7515 section 5.2)
        signature = _segment(signature_b64, "signature")
        try:
            key.verify_signature(signature, compact[: len(header_b64) + 1 + len(payload_b64)])
        except InvalidSignature as exc:
            raise TokenVerificationError("bad signature", reason="signature") from exc
        if seen is None:
            headers = self._headers
            if len(headers) >= HEADER_CACHE_SIZE:
                headers.clear()
            headers[header_b64] = (alg, kid)
        claims = _json_object(_segment(payload_b64, "payload"), "payload")
        # 5. registered claims
        for name in REQUIRED_CLAIMS:
            if claims.get(name) is None:
                raise TokenVerificationError(
                    f"token is missing the {name!r} claim", reason="missing_claim"
                )
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise TokenVerificationError("sub must be a non-empty string", reason="missing_claim")
        if claims["iss"] != self.issuer:
            raise TokenVerificationError("wrong issuer", reason="issuer")
        aud = claims["aud"]
        if aud != self.audience and (not isinstance(aud, list) or self.audience not in aud):
            raise TokenVerificationError("wrong audience", reason="audience")
        # 6. time checks against the injected clock
        exp = _numeric_date(claims["exp"], "exp")
        iat = _numeric_date(claims["iat"], "iat")
        if exp <= now - self.leeway_s:
            raise TokenVerificationError("token expired", reason="expired")
        if iat > now + self.leeway_s:
            raise TokenVerificationError("iat is in the future", reason="iat_future")
        if "nbf" in claims and _numeric_date(claims["nbf"], "nbf") > now + self.leeway_s:
            raise TokenVerificationError("token not yet valid", reason="not_yet_valid")
        return claims


def _parse_header(header_b64: bytes) -> tuple[str, Any]:
    """Steps 1-2 of :meth:`TokenVerifier.verify` for the header: its ``(alg, kid)``."""
    header = _json_object(_segment(header_b64, "header"), "header")
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        raise TokenVerificationError(f"algorithm {alg!r} is not allowed", reason="algorithm")
    if "crit" in header or header.get("b64", True) is not True:
        raise TokenVerificationError("JWS extensions are not supported", reason="malformed")
    return alg, header.get("kid")


def _b64url_table() -> bytes:
    """bytes.translate table: base64url to standard base64; every byte outside the base64url
    alphabet (including ``+``, ``/`` and ``=``) becomes ``!``, which strict decoding refuses."""
    table = bytearray(b"!" * 256)
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789":
        table[c] = c
    table[ord("-")], table[ord("_")] = ord("+"), ord("/")
    return bytes(table)


_B64URL_TO_STD = _b64url_table()
_B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# the last character of a segment of length 4n+2 (4n+3) carries 4 (2) unused bits, which must
# be zero: a non-zero value is a second spelling of the same bytes (RFC 4648 section 3.5)
_CANONICAL_LAST: tuple[frozenset[int], ...] = (
    frozenset(_B64URL),
    frozenset(),
    frozenset(c for i, c in enumerate(_B64URL) if i % 16 == 0),
    frozenset(c for i, c in enumerate(_B64URL) if i % 4 == 0),
)
_PADDING = (b"", b"", b"==", b"=")


def _segment(text: bytes, name: str) -> bytes:
    """Decode one canonical, unpadded base64url segment (RFC 7515 section 2)."""
    rest = len(text) % 4
    try:
        data = binascii.a2b_base64(
            text.translate(_B64URL_TO_STD) + _PADDING[rest], strict_mode=True
        )
    except binascii.Error as exc:  # a character outside the alphabet, or 4n+1 characters
        raise TokenVerificationError(f"{name} is not base64url", reason="malformed") from exc
    if text and text[-1] not in _CANONICAL_LAST[rest]:
        raise TokenVerificationError(f"{name} is not canonical base64url", reason="malformed")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _json_object(data: bytes, name: str) -> dict[str, Any]:
    """Parse a UTF-8 JSON object (RFC 7519 section 7.2), refusing NaN and Infinity."""
    try:
        text = data.decode("utf-8")
        if text[:1] == "{" and text[-1:] == "}":
            # the common case without the surrounding-whitespace scans of decode(): an
            # object from the first to the last character, and nothing after it
            value, end = _JSON.raw_decode(text)
            if end != len(text):
                raise ValueError("extra data after the JSON object")
        else:
            value = _JSON.decode(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise TokenVerificationError(f"{name} is not JSON", reason="malformed") from exc
    if not isinstance(value, dict):
        raise TokenVerificationError(f"{name} is not a JSON object", reason="malformed")
    return value
