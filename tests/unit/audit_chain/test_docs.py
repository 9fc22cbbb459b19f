"""The Python examples in docs/provenance.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "provenance.md"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_doc_has_an_example() -> None:
    assert _examples()


@pytest.mark.parametrize("code", _examples())
def test_example_runs(code: str) -> None:
    namespace: dict[str, object] = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    assert namespace["tree_size"] == 1
