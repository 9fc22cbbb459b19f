"""Revocation sets: what the caller says is revoked, checked by ``verify_client_svid``.

The scheduler keeps revocations in its database and hands the verifier a fresh
:class:`RevocationSet` snapshot (rebuilding it from the database at least every second
gives "effective on every replica within 2 s"). An operator CA's revocation is part of the
same set: its name and its intermediate certificates' serials.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RevocationSet:
    """Revoked certificate serials, SPIFFE IDs, node ids and operators (immutable snapshot).

    ``serials`` may hold leaf or operator-CA serials; ``spiffe_ids`` hold full SPIFFE ID URIs.
    """

    serials: frozenset[int] = frozenset()
    spiffe_ids: frozenset[str] = frozenset()
    operators: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        serials: Iterable[int] = (),
        spiffe_ids: Iterable[str] = (),
        operators: Iterable[str] = (),
    ) -> RevocationSet:
        return cls(frozenset(serials), frozenset(spiffe_ids), frozenset(operators))

    def union(self, other: RevocationSet) -> RevocationSet:
        return RevocationSet(
            self.serials | other.serials,
            self.spiffe_ids | other.spiffe_ids,
            self.operators | other.operators,
        )

    def leaf_revoked(self, serial: int, spiffe_id: str) -> bool:
        return serial in self.serials or spiffe_id in self.spiffe_ids

    def operator_revoked(self, operator: str, ca_serial: int) -> bool:
        return operator in self.operators or ca_serial in self.serials


NO_REVOCATIONS = RevocationSet()
