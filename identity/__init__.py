"""cntrust identity: who a node is and what it runs (CA, SVIDs, tokens, attestation)."""

from identity.errors import IdentityError, TokenVerificationError, VerificationError
from identity.tokens import (
    ALLOWED_ALGORITHMS,
    KeySet,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
    VerificationKey,
    keys_by_kid,
    verification_key_from_jwk,
)

__all__ = [
    "ALLOWED_ALGORITHMS",
    "IdentityError",
    "KeySet",
    "SigningKey",
    "TokenIssuer",
    "TokenVerificationError",
    "TokenVerifier",
    "VerificationError",
    "VerificationKey",
    "keys_by_kid",
    "verification_key_from_jwk",
]
