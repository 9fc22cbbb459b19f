"""Process tuning for a long-running scheduler (``cntrust up``), applied once at start.

- The garbage collector: everything alive after start-up (modules, the app, caches)
  is moved to the permanent generation with :func:`gc.freeze`, so full collections
  no longer walk it, and the young-generation threshold is raised so the many
  short-lived objects of a request (ORM rows, pydantic models) trigger fewer
  collections. This cuts the latency spikes of full collections under load.
- The GIL switch interval: the API's event loop and the group-commit thread share the
  interpreter; a shorter interval lets a request that only needs a few microseconds
  of Python run while the committer works through a large batch.
- The event loop of a long-running agent: uvloop where it is installed (it comes with
  ``uvicorn[standard]``, which the API runs on too); asyncio's own loop spent about a
  third of a busy agent's CPU in its own machinery.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

GC_THRESHOLD = (50_000, 20, 100)
SWITCH_INTERVAL_S = 0.001


def tune_for_service() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard] on Linux
        return asyncio.run(main)
    return uvloop.run(main)
