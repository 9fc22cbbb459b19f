"""``PolicyStore``: the policy set in force, swapped atomically, never to an invalid one.

Invariants:
- The store always holds a ``PolicySet`` that passed load-time validation (a ``PolicySet``
  cannot be built otherwise); ``engine`` and ``compiled_engine`` decide with exactly that
  set and are replaced together, in one assignment.
- ``load`` validates before swapping: an invalid directory raises ``PolicyLoadError`` and the
  set in force stays. ``swap`` returns old and new versions for the provenance record.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from policies._compiled_engine import CompiledEngine
from policies._engine import CedarEngine
from policies._policy_set import (
    PolicyLimits,
    PolicySet,
    load_policy_set,
    policy_set_from_export,
)


@dataclass(frozen=True)
class PolicySwap:
    """A change of the policy set in force: ``old_version`` -> ``new_version``."""

    old_version: str
    new_version: str

    @property
    def changed(self) -> bool:
        return self.old_version != self.new_version


class PolicyStore:
    """Holds the policy set in force and a ``CedarEngine`` for it. Thread-safe."""

    def __init__(self, initial: PolicySet, *, cache_size: int = 4096) -> None:
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._engines = self._build(initial)

    def _build(self, policy_set: PolicySet) -> tuple[CedarEngine, CompiledEngine]:
        cedar = CedarEngine(policy_set, cache_size=self._cache_size)
        return cedar, CompiledEngine(policy_set, reference=cedar)

    @property
    def current(self) -> PolicySet:
        return self._engines[0].policy_set

    @property
    def version(self) -> str:
        return self._engines[0].policy_set.version

    @property
    def engine(self) -> CedarEngine:
        """The Cedar engine for the set in force (a new object after each swap)."""
        return self._engines[0]

    @property
    def compiled_engine(self) -> CompiledEngine:
        """The compiled engine for the set in force (for API authorization under a latency
        budget); swapped together with ``engine``."""
        return self._engines[1]

    def swap(self, new_set: PolicySet) -> PolicySwap:
        """Put ``new_set`` in force; returns the old and new versions."""
        engines = self._build(new_set)
        with self._lock:
            old = self._engines[0].policy_set.version
            self._engines = engines
        return PolicySwap(old, new_set.version)

    def load(self, directory: str | Path, *, limits: PolicyLimits | None = None) -> PolicySwap:
        """Load, validate and swap in ``directory``'s set.

        Raises PolicyLoadError (or PolicyFileTooLargeError); the set in force then stays.
        """
        return self.swap(load_policy_set(directory, limits=limits))

    def load_export(self, text: str, *, limits: PolicyLimits | None = None) -> PolicySwap:
        """Swap in a set stored as ``PolicySet.export()`` text (how replicas follow a change).

        Raises PolicyLoadError (or PolicyFileTooLargeError); the set in force then stays.
        """
        return self.swap(policy_set_from_export(text, limits=limits))
