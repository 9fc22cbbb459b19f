"""Errors raised by `identity`.

Tree::

    IdentityError
    └── VerificationError             a security check failed; carries a stable ``reason``
        └── TokenVerificationError    a JWT was refused
"""

from __future__ import annotations


class IdentityError(Exception):
    """Root of every error identity raises."""


class VerificationError(IdentityError):
    """A verification failed. ``reason`` is a stable machine-readable code."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class TokenVerificationError(VerificationError):
    """A JWT was refused (see :meth:`identity.tokens.TokenVerifier.verify` for reasons)."""
