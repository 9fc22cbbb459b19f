"""Importing the EVM stack must not leave the process able to crash on nested input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_embedded_chain_import_caps_the_recursion_limit():
    from audit_chain.anchoring import EmbeddedChain  # noqa: F401  (imports py-evm and py_ecc)
    from audit_chain.anchoring._limits import RECURSION_LIMIT_CAP

    assert sys.getrecursionlimit() <= RECURSION_LIMIT_CAP
    with pytest.raises(RecursionError):
        json.loads("[" * 60_000)


def test_nested_json_after_import_raises_instead_of_killing_the_process():
    code = (
        "import json\n"
        "from audit_chain.anchoring import EmbeddedChain\n"
        "try:\n"
        "    json.loads('[' * 60000)\n"
        "except RecursionError:\n"
        "    print('refused')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "refused", proc.stderr[-500:]
