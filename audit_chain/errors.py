"""Errors raised by `audit_chain`.

Tree::

    AuditChainError
"""

from __future__ import annotations


class AuditChainError(Exception):
    """Root of every error audit_chain raises."""
