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
- Verification parses the compact JWS once, itself (canonical unpadded base64url, JSON
  objects without NaN/Infinity, no ``crit``/``b64`` extensions) and checks the signature
  with pyca/cryptography directly: pyjwt parsed every token twice and validated base64
  character by character in Python, which cost more than the signature check. Issuing
  still uses pyjwt.
- The key is chosen by ``kid`` from a key set; an unknown ``kid`` is refused.
- Rotation: a :class:`KeySet` holds the active signing key and retired
  verification keys; a retired key verifies until its ``not_after``.

The clock is injected so tests control time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from identity.errors import TokenVerificationError

ALLOWED_ALGORITHMS = ("EdDSA", "ES256")
REQUIRED_CLAIMS = ("exp", "iat", "aud", "iss", "sub")
MAX_TOKEN_BYTES = 8192

Clock = Callable[[], float]
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


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
    """A public key with its ``kid``; ``not_after`` (epoch seconds) bounds a retired key."""

    kid: str
    algorithm: str
    public_key: PublicKey
    not_after: float | None = None

    def to_jwk(self) -> dict[str, str]:
        jwk = _public_jwk(self.public_key)
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig"})
        return jwk


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


def _numeric_date(claims: Mapping[str, Any], name: str) -> float:
    """RFC 7519 NumericDate: a finite JSON number (bool excluded)."""
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenVerificationError(f"{name} must be a number", reason="malformed")
    number = float(value)
    if not math.isfinite(number):
        raise TokenVerificationError(f"{name} must be finite", reason="malformed")
    return number


@dataclass
class KeySet:
    """The active signing key plus retired keys that still verify until their tokens expire."""

    active: SigningKey
    retired: list[VerificationKey] = field(default_factory=list)

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

    ``keys`` is called on every verification so a rotation is seen at once.
    """

    keys: Callable[[], list[VerificationKey]]
    issuer: str
    audience: str
    clock: Clock
    leeway_s: float = 30.0

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
        segments = token.split(".")
        if len(segments) != 3:
            raise TokenVerificationError("a JWS has three segments", reason="malformed")
        header_b64, payload_b64, signature_b64 = segments
        header = _json_object(_segment(header_b64, "header"), "header")
        # 2. algorithm allow-list, before a key is chosen (defeats alg=none and HS256-with-pubkey)
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise TokenVerificationError(f"algorithm {alg!r} is not allowed", reason="algorithm")
        if "crit" in header or header.get("b64", True) is not True:
            raise TokenVerificationError("JWS extensions are not supported", reason="malformed")
        # 3. key by kid; the key's own algorithm must match the header's
        kid = header.get("kid")
        now = self.clock()
        key = next((k for k in self.keys() if k.kid == kid), None)
        if key is None or (key.not_after is not None and key.not_after <= now):
            raise TokenVerificationError(f"unknown key id {kid!r}", reason="unknown_kid")
        if key.algorithm != alg:
            raise TokenVerificationError("algorithm does not match the key", reason="algorithm")
        # 4. signature over the ASCII signing input (RFC 7515 section 5.2)
        signature = _segment(signature_b64, "signature")
        _verify_signature(key, signature, f"{header_b64}.{payload_b64}".encode("ascii"))
        claims = _json_object(_segment(payload_b64, "payload"), "payload")
        # 5. registered claims
        for name in REQUIRED_CLAIMS:
            if claims.get(name) is None:
                raise TokenVerificationError(
                    f"token is missing the {name!r} claim", reason="missing_claim"
                )
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise TokenVerificationError("sub must be a non-empty string", reason="missing_claim")
        if claims["iss"] != self.issuer:
            raise TokenVerificationError("wrong issuer", reason="issuer")
        aud = claims["aud"]
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or self.audience not in audiences:
            raise TokenVerificationError("wrong audience", reason="audience")
        # 6. time checks against the injected clock
        exp = _numeric_date(claims, "exp")
        iat = _numeric_date(claims, "iat")
        if exp <= now - self.leeway_s:
            raise TokenVerificationError("token expired", reason="expired")
        if iat > now + self.leeway_s:
            raise TokenVerificationError("iat is in the future", reason="iat_future")
        nbf = _numeric_date(claims, "nbf") if "nbf" in claims else None
        if nbf is not None and nbf > now + self.leeway_s:
            raise TokenVerificationError("token not yet valid", reason="not_yet_valid")
        return claims


_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")


def _segment(text: str, name: str) -> bytes:
    """Decode one canonical, unpadded base64url segment (RFC 7515 section 2)."""
    if len(text) % 4 == 1 or not _B64URL_RE.fullmatch(text):
        raise TokenVerificationError(f"{name} is not base64url", reason="malformed")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64u(data) != text:  # non-zero trailing bits: a second spelling of the same bytes
        raise TokenVerificationError(f"{name} is not canonical base64url", reason="malformed")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_object(data: bytes, name: str) -> dict[str, Any]:
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise TokenVerificationError(f"{name} is not JSON", reason="malformed") from exc
    if not isinstance(value, dict):
        raise TokenVerificationError(f"{name} is not a JSON object", reason="malformed")
    return value


def _verify_signature(key: VerificationKey, signature: bytes, signing_input: bytes) -> None:
    public = key.public_key
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, signing_input)
        else:
            # JWS ES256 signatures are R || S, 32 bytes each (RFC 7518 section 3.4)
            if len(signature) != 64:
                raise InvalidSignature
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise TokenVerificationError("bad signature", reason="signature") from exc
