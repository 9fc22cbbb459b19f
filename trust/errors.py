"""Errors raised by `trust`.

Tree::

    TrustError
"""

from __future__ import annotations


class TrustError(Exception):
    """Root of every error trust raises."""
