"""Keep the process's recursion limit sane after the EVM stack is imported.

py_ecc (imported by py-evm) raises ``sys.setrecursionlimit`` to 100,000 at import
time, and py-evm to ~12,000. With such a limit, parsing deeply nested input (for
example ``[[[[...`` in a 64 KB JSON body) recurses in C until the thread's stack
overflows and the whole process dies with SIGSEGV, instead of raising
RecursionError. Every module here that imports web3/eth calls
:func:`cap_recursion_limit` right after its imports. The anchoring code makes
no nested EVM calls, so it needs far less than the cap.
"""

from __future__ import annotations

import sys

RECURSION_LIMIT_CAP = 4000


def cap_recursion_limit() -> None:
    if sys.getrecursionlimit() > RECURSION_LIMIT_CAP:
        sys.setrecursionlimit(RECURSION_LIMIT_CAP)
