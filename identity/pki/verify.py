"""Client X.509-SVID verification for mTLS (what the TLS stack does not check for us).

``verify_client_svid`` runs these steps in order and raises
:class:`SvidVerificationError` (with ``step`` and a stable ``reason``) on the first failure:

1. parse the presented chain (PEM list, one DER certificate, or a list of DER), size
   checked first (``malformed``);
2. the leaf is not a CA: basicConstraints CA:true or keyUsage keyCertSign/cRLSign is
   refused (``ca_as_leaf``);
3. chain: the leaf is signed by an operator CA (presented or in the trust bundle) which is
   signed by a root of the trust bundle (``untrusted_chain``; a chain from another root);
4. validity of the leaf, its operator CA and the root at ``now`` (``not_yet_valid``,
   ``expired``);
5. the leaf has EKU clientAuth (``missing_client_auth``; cryptography's verifier accepts a
   client certificate with no EKU) and, if keyUsage is present, digitalSignature
   (``key_usage``);
6. exactly one URI SAN holding a valid node SPIFFE ID in the bundle's trust domain
   (``spiffe_id``, ``other_trust_domain``);
7. the operator in the SPIFFE path is the operator named by the issuing CA
   (``operator_mismatch``), so one operator's CA cannot mint another operator's nodes;
8. revocation from the caller's :class:`RevocationSet`: the operator CA
   (``operator_revoked``), then the leaf serial or SPIFFE ID (``revoked``);
9. RFC 5280 path validation by cryptography's verifier as a second opinion
   (``path_validation``) when every key in the path is ECDSA or RSA. cryptography's
   verifier follows the Web PKI profile and forbids Ed25519, so an Ed25519 path relies on
   steps 2-8 alone (signatures, validity, CA flags and the fixed leaf -> operator CA ->
   root shape, which is what path length constraints would enforce).

An unrecognised critical extension in the leaf is refused in step 5
(``critical_extension``), as RFC 5280 section 4.2 requires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from identity.pki.bundle import TrustBundle, load_chain
from identity.pki.clock import as_utc
from identity.pki.errors import SpiffeIdError, SvidVerificationError
from identity.pki.parsing import X509_PARSE_ERRORS, X509_PARSE_OR_SIGNATURE_ERRORS
from identity.pki.revocation import RevocationSet
from identity.pki.spiffe import NodeSpiffeId, parse_node_spiffe_id, parse_spiffe_id


@dataclass(frozen=True)
class VerifiedSvid:
    """The identity proven by a client X.509-SVID."""

    spiffe_id: NodeSpiffeId
    operator: str
    node_id: str
    serial: int
    not_after: datetime
    issuer_serial: int


def verify_client_svid(
    chain: bytes | Sequence[bytes],
    trust_bundle: TrustBundle,
    now: float | datetime,
    revocation_check: RevocationSet,
) -> VerifiedSvid:
    """Verify a client's X.509-SVID chain (steps in the module docstring).

    ``now`` is epoch seconds or an aware datetime. Raises SvidVerificationError (and
    PkiError(reason="naive_datetime") for a datetime without a time zone).
    """
    now_dt = as_utc(now)
    # 1. parse, size first
    certs = load_chain(chain)
    leaf, presented = certs[0], certs[1:]
    # 2. a CA certificate is never a leaf
    if _is_ca(leaf):
        raise _err("a CA certificate was presented as a leaf", "ca_as_leaf", 2, leaf)
    # 3. chain to a root of the trust bundle through an operator CA
    issuer, root = _find_issuer(leaf, presented, trust_bundle)
    # 4. validity at now, of the whole path
    path = ((leaf, "certificate"), (issuer, "operator CA certificate"), (root, "root CA"))
    for cert, what in path:
        if now_dt < cert.not_valid_before_utc:
            raise _err(f"{what} is not yet valid", "not_yet_valid", 4, cert)
        if now_dt > cert.not_valid_after_utc:
            raise _err(f"{what} has expired", "expired", 4, cert)
    # 5. usage: clientAuth EKU required, digitalSignature if keyUsage present
    exts = leaf.extensions
    try:
        eku = exts.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise _err("certificate has no EKU", "missing_client_auth", 5, leaf) from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise _err("certificate EKU lacks clientAuth", "missing_client_auth", 5, leaf)
    try:
        key_usage = exts.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        key_usage = None
    if key_usage is not None and not key_usage.digital_signature:
        raise _err("keyUsage lacks digitalSignature", "key_usage", 5, leaf)
    for ext in exts:
        if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
            raise _err(
                f"unrecognised critical extension {ext.oid.dotted_string}",
                "critical_extension",
                5,
                leaf,
            )
    # 6. SPIFFE ID in the only URI SAN, inside the trust domain
    spiffe_id = _leaf_spiffe_id(leaf, trust_bundle.trust_domain)
    # 7. the operator CA may only vouch for its own operator's nodes
    ca_operator = _ca_operator(issuer, trust_bundle.trust_domain)
    if ca_operator != spiffe_id.operator:
        raise _err(
            f"SPIFFE ID names operator {spiffe_id.operator!r} but the issuing CA is "
            f"{ca_operator!r}'s",
            "operator_mismatch",
            7,
            leaf,
        )
    # 8. revocation (operator CA first, then the leaf)
    if revocation_check.operator_revoked(ca_operator, issuer.serial_number):
        raise _err(f"operator {ca_operator!r} CA is revoked", "operator_revoked", 8, issuer)
    if revocation_check.leaf_revoked(leaf.serial_number, spiffe_id.uri):
        raise _err(
            f"{spiffe_id.uri} (serial {leaf.serial_number:x}) is revoked", "revoked", 8, leaf
        )
    # 9. RFC 5280 path validation as a second opinion (not for Ed25519, see docstring)
    if _web_pki_keys(leaf, issuer, root):
        _path_validation(leaf, issuer, trust_bundle, now_dt)
    return VerifiedSvid(
        spiffe_id=spiffe_id,
        operator=spiffe_id.operator,
        node_id=spiffe_id.node_id,
        serial=leaf.serial_number,
        not_after=leaf.not_valid_after_utc,
        issuer_serial=issuer.serial_number,
    )


def _web_pki_keys(*certs: x509.Certificate) -> bool:
    try:
        keys = [cert.public_key() for cert in certs]
    except X509_PARSE_ERRORS:
        return False
    return all(isinstance(k, ec.EllipticCurvePublicKey | rsa.RSAPublicKey) for k in keys)


def _path_validation(
    leaf: x509.Certificate, issuer: x509.Certificate, bundle: TrustBundle, now: datetime
) -> None:
    try:
        verifier = (
            verification.PolicyBuilder()
            .store(bundle.store())
            .time(now)
            .max_chain_depth(1)
            .build_client_verifier()
        )
        verifier.verify(leaf, [issuer])
    except verification.VerificationError as exc:
        raise _err(f"RFC 5280 path validation failed: {exc}", "path_validation", 9, leaf) from exc


def _err(message: str, reason: str, step: int, cert: x509.Certificate) -> SvidVerificationError:
    return SvidVerificationError(message, reason=reason, step=step, serial=cert.serial_number)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        exts = cert.extensions
    except X509_PARSE_ERRORS as exc:
        raise _err(f"malformed extensions: {exc}", "malformed", 1, cert) from exc
    basic = next((e for e in exts if isinstance(e.value, x509.BasicConstraints)), None)
    if basic is not None and basic.value.ca:
        return True
    try:
        usage = exts.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return bool(usage.key_cert_sign or usage.crl_sign)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except X509_PARSE_OR_SIGNATURE_ERRORS:
        return False
    return True


def _aki(cert: x509.Certificate) -> bytes | None:
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return aki.key_identifier


def _find_issuer(
    leaf: x509.Certificate, presented: list[x509.Certificate], bundle: TrustBundle
) -> tuple[x509.Certificate, x509.Certificate]:
    """Return (operator CA, root) such that root -> operator CA -> leaf verifies."""
    aki = _aki(leaf)
    candidates = [*presented, *(bundle.by_ski(aki) if aki is not None else ())]
    for cand in candidates:
        if bundle.is_root(cand) or not _issued_by(leaf, cand):
            continue
        root = bundle.issuing_root(cand)
        if root is not None:
            return cand, root
        if _is_ca(cand):
            for root in bundle.roots:
                if _issued_by(cand, root):
                    return cand, root
    raise _err(
        "certificate does not chain to the trust bundle through an operator CA",
        "untrusted_chain",
        3,
        leaf,
    )


def _leaf_spiffe_id(leaf: x509.Certificate, trust_domain: str) -> NodeSpiffeId:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise _err("certificate has no SAN", "spiffe_id", 6, leaf) from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise _err(f"expected one URI SAN, found {len(uris)}", "spiffe_id", 6, leaf)
    try:
        return parse_node_spiffe_id(uris[0], trust_domain=trust_domain)
    except SpiffeIdError as exc:
        reason = "other_trust_domain" if exc.reason == "other_trust_domain" else "spiffe_id"
        raise _err(f"SPIFFE ID refused: {exc}", reason, 6, leaf) from exc


def _ca_operator(issuer: x509.Certificate, trust_domain: str) -> str:
    try:
        san = issuer.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        parsed = parse_spiffe_id(uris[0]) if len(uris) == 1 else None
    except (x509.ExtensionNotFound, SpiffeIdError):
        parsed = None
    if (
        parsed is None
        or parsed.trust_domain != trust_domain
        or len(parsed.segments) != 2
        or parsed.segments[0] != "operator"
    ):
        raise _err("issuing CA names no operator", "operator_mismatch", 7, issuer)
    return parsed.segments[1]
