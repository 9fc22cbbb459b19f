"""identity.pki: the node identity PKI of cntrust.

Root CA and per-operator CAs, SPIFFE IDs, join tokens, CSR checks, X.509-SVID issuance,
client SVID verification for mTLS, JWT-SVIDs, revocation sets and attest-to-renew.
"""

from identity.pki.bundle import TrustBundle
from identity.pki.ca import (
    DEFAULT_SVID_TTL,
    MAX_SVID_TTL,
    CertificateAuthority,
    IssuedSvid,
    OperatorCa,
)
from identity.pki.csr import MAX_CSR_BYTES, CheckedCsr, check_csr
from identity.pki.errors import (
    CaStoreError,
    CsrError,
    JoinTokenError,
    JwtSvidError,
    PkiError,
    RenewalError,
    SpiffeIdError,
    SvidVerificationError,
)
from identity.pki.join_tokens import (
    InMemoryJoinTokenStore,
    JoinTokenRecord,
    create_join_token,
    hash_join_token_secret,
    join_token_id,
    verify_join_token,
)
from identity.pki.jwt_svid import (
    MAX_SERVICE_TOKEN_TTL,
    JwtSvid,
    JwtSvidIssuer,
    JwtSvidVerifier,
)
from identity.pki.keys import KeyAlgorithm
from identity.pki.node import (
    NodeCredentials,
    build_csr,
    generate_node_key,
    load_node_credentials,
    save_node_key,
    save_node_svid,
)
from identity.pki.renewal import renew_at, renew_svid, should_renew
from identity.pki.revocation import NO_REVOCATIONS, RevocationSet
from identity.pki.server_cert import ServerCertificate, issue_server_certificate
from identity.pki.spiffe import (
    NodeSpiffeId,
    SpiffeId,
    node_spiffe_id,
    parse_node_spiffe_id,
    parse_spiffe_id,
    validate_name,
    validate_trust_domain,
)
from identity.pki.store import load_ca, save_ca
from identity.pki.verify import VerifiedSvid, verify_client_svid

__all__ = [
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
]
