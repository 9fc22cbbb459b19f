"""cntrust audit_chain: what happened, provably (Merkle log, checkpoints, anchoring, offline verification)."""

from audit_chain.errors import AuditChainError

__all__ = ["AuditChainError"]
