"""Errors raised by `policies`.

Tree::

    PolicyError
"""

from __future__ import annotations


class PolicyError(Exception):
    """Root of every error policies raises."""
