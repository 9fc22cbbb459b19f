"""cntrust ids: who is attacking (packet decode, rules, three detection layers, EVE alerts)."""

from ids.errors import IdsError

__all__ = ["IdsError"]
