"""The public API of identity.pki is pinned: changing it is a deliberate act."""

from __future__ import annotations

import identity.pki
from identity.errors import IdentityError, VerificationError

EXPECTED = {
    "DEFAULT_SVID_TTL",
    "MAX_CSR_BYTES",
    "MAX_SERVICE_TOKEN_TTL",
    "MAX_SVID_TTL",
    "NO_REVOCATIONS",
    "CaStoreError",
    "CertificateAuthority",
    "CheckedCsr",
    "CsrError",
    "InMemoryJoinTokenStore",
    "IssuedSvid",
    "JoinTokenError",
    "JoinTokenRecord",
    "JwtSvid",
    "JwtSvidError",
    "JwtSvidIssuer",
    "JwtSvidVerifier",
    "KeyAlgorithm",
    "NodeCredentials",
    "NodeSpiffeId",
    "OperatorCa",
    "PkiError",
    "RenewalError",
    "RevocationSet",
    "ServerCertificate",
    "SpiffeId",
    "SpiffeIdError",
    "SvidVerificationError",
    "TrustBundle",
    "VerifiedSvid",
    "build_csr",
    "check_csr",
    "create_join_token",
    "generate_node_key",
    "hash_join_token_secret",
    "issue_server_certificate",
    "join_token_id",
    "load_ca",
    "load_node_credentials",
    "node_spiffe_id",
    "parse_node_spiffe_id",
    "parse_spiffe_id",
    "renew_at",
    "renew_svid",
    "save_ca",
    "save_node_key",
    "save_node_svid",
    "should_renew",
    "validate_name",
    "validate_trust_domain",
    "verify_client_svid",
    "verify_join_token",
}


def test_all_is_pinned() -> None:
    assert set(identity.pki.__all__) == EXPECTED
    assert len(identity.pki.__all__) == len(EXPECTED)
    for name in identity.pki.__all__:
        assert getattr(identity.pki, name) is not None


def test_error_tree() -> None:
    verification = {
        "SpiffeIdError",
        "JoinTokenError",
        "CsrError",
        "SvidVerificationError",
        "RenewalError",
        "JwtSvidError",
    }
    for name in verification:
        assert issubclass(getattr(identity.pki, name), VerificationError), name
    for name in ("PkiError", "CaStoreError"):
        error = getattr(identity.pki, name)
        assert issubclass(error, IdentityError)
        assert not issubclass(error, VerificationError)
