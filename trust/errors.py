"""Errors raised by `trust`.

Tree::

    TrustError
    ├── EvidenceError          an evidence item is malformed; carries ``field``
    ├── UnknownNodeError       a node id the engine has never registered; carries ``node_id``
    ├── DuplicateNodeError     a node id registered twice; carries ``node_id``
    └── ScenarioError          a simulator scenario is invalid; carries ``field`` (dotted path)

Refused evidence (unknown node, unauthenticated source, future timestamp, replay) is not an
exception: :meth:`trust.TrustEngine.ingest` returns an ``IntakeResult`` naming the reason and
counts it, so a flood of bad evidence never costs more than a counter increment.
"""

from __future__ import annotations


class TrustError(Exception):
    """Root of every error trust raises."""


class EvidenceError(TrustError):
    """An evidence item is malformed. ``field`` names the offending attribute."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class UnknownNodeError(TrustError):
    """The node id was never registered with the engine."""

    def __init__(self, node_id: str) -> None:
        super().__init__(f"unknown node {node_id!r}")
        self.node_id = node_id


class DuplicateNodeError(TrustError):
    """The node id is already registered (a whitewashed identity must use a new id)."""

    def __init__(self, node_id: str) -> None:
        super().__init__(f"node {node_id!r} is already registered")
        self.node_id = node_id


class ScenarioError(TrustError):
    """A simulator scenario is invalid. ``field`` is the dotted path of the bad field."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
