"""cntrust trust: how far to trust a node now (evidence -> opinion with uncertainty and reasons)."""

from trust.errors import TrustError

__all__ = ["TrustError"]
