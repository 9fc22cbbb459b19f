"""The exceptions pyca/cryptography raises on malformed X.509/PKCS #10 input.

Several are plain ``Exception`` subclasses (``InvalidVersion``, ``UnsupportedAlgorithm``,
``DuplicateExtension``, ``UnsupportedGeneralNameType``), so catching ``ValueError`` alone
lets a crafted certificate or CSR crash a caller. Every parser in ``identity.pki`` catches
this tuple and raises its own specific error instead (found by the Hypothesis fuzz tests).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

X509_PARSE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    x509.InvalidVersion,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)

X509_PARSE_OR_SIGNATURE_ERRORS: tuple[type[Exception], ...] = (
    *X509_PARSE_ERRORS,
    InvalidSignature,
)
