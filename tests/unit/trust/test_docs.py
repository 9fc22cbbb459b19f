"""The usage example in trust's package docstring runs, so it never drifts."""

from __future__ import annotations

import doctest

import trust


def test_package_docstring_example() -> None:
    result = doctest.testmod(trust, verbose=False)
    assert result.attempted >= 10
    assert result.failed == 0
