"""Errors raised by `identity.pki`.

Every error is a subclass of :class:`identity.errors.IdentityError`; the refusals of
outside input are :class:`identity.errors.VerificationError` subclasses carrying a
stable machine-readable ``reason``.

Tree::

    IdentityError
    ├── PkiError                  misuse of the CA (unknown or revoked operator, bad lifetime)
    │   └── CaStoreError          the CA directory could not be loaded or saved
    └── VerificationError
        ├── SpiffeIdError         a SPIFFE ID was refused
        ├── JoinTokenError        a join token was refused (unknown / reused / expired)
        ├── CsrError              a certificate signing request was refused
        ├── SvidVerificationError a client X.509-SVID was refused
        ├── RenewalError          an SVID renewal was refused (attest-to-renew)
        └── TokenVerificationError
            └── JwtSvidError      a JWT was valid but not an acceptable JWT-SVID
"""

from __future__ import annotations

from identity.errors import IdentityError, TokenVerificationError, VerificationError


class PkiError(IdentityError):
    """The CA was asked to do something it must not.

    Reasons: ``unknown_operator``, ``exists``, ``operator_revoked``, ``operator_ca_expired``,
    ``lifetime``, ``audience``, ``key_algorithm``, ``naive_datetime``; for CaStoreError
    also ``missing``, ``permissions``, ``too_large``, ``malformed``, ``io``, ``key_mismatch``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class CaStoreError(PkiError):
    """The CA directory is missing, malformed, or a key file is readable by others."""

    def __init__(self, message: str, *, reason: str, path: str) -> None:
        super().__init__(message, reason=reason)
        self.path = path


class SpiffeIdError(VerificationError):
    """A SPIFFE ID was refused. ``value`` is the (truncated) offending input.

    Reasons: ``type``, ``too_long``, ``character``, ``percent_encoding``, ``scheme``,
    ``trust_domain``, ``empty_segment``, ``trailing_slash``, ``dot_segment``, ``shape``,
    ``other_trust_domain``.
    """

    def __init__(self, message: str, *, reason: str, value: str = "") -> None:
        super().__init__(message, reason=reason)
        self.value = value[:256]


class JoinTokenError(VerificationError):
    """A join token was refused. Reasons: ``unknown``, ``reused``, ``expired``."""

    def __init__(self, message: str, *, reason: str, token_id: str = "") -> None:
        super().__init__(message, reason=reason)
        self.token_id = token_id


class CsrError(VerificationError):
    """A CSR was refused.

    Reasons: ``too_large``, ``malformed``, ``signature``, ``key_type``, ``key_size``,
    ``ca_requested``.
    """


class SvidVerificationError(VerificationError):
    """A client X.509-SVID was refused; ``step`` is the numbered verification step.

    Reasons: ``malformed``, ``untrusted_chain``, ``expired``, ``not_yet_valid``,
    ``ca_as_leaf``, ``missing_client_auth``, ``key_usage``, ``spiffe_id``,
    ``other_trust_domain``, ``operator_mismatch``, ``revoked``, ``operator_revoked``,
    ``path_validation``.
    """

    def __init__(self, message: str, *, reason: str, step: int, serial: int | None = None) -> None:
        super().__init__(message, reason=reason)
        self.step = step
        self.serial = serial


class RenewalError(VerificationError):
    """An SVID renewal was refused. Reasons: ``attestation_required``, ``attestation_failed``."""


class JwtSvidError(TokenVerificationError):
    """A JWT verified but is not an acceptable JWT-SVID.

    Reasons: ``spiffe_id``, ``other_trust_domain``, ``lifetime``, ``revoked``,
    ``operator_revoked``.
    """
