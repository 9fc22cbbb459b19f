"""Errors raised by `ids`.

Tree::

    IdsError
"""

from __future__ import annotations


class IdsError(Exception):
    """Root of every error ids raises."""
