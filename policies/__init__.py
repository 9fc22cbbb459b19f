"""cntrust policies: what is allowed (Cedar policies with a schema; decisions carry reasons)."""

from policies.errors import PolicyError

__all__ = ["PolicyError"]
