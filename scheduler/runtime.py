"""Process tuning for a long-running scheduler (``cntrust up``), applied once at start.

- The garbage collector: everything alive after start-up (modules, the app, caches)
  is moved to the permanent generation with :func:`gc.freeze`, so full collections
  no longer walk it, and the young-generation threshold is raised so the many
  short-lived objects of a request (ORM rows, pydantic models) trigger fewer
  collections. This cuts the latency spikes of full collections under load.
- The GIL switch interval: the API's event loop and the group-commit thread share the
  interpreter; a shorter interval lets a request that only needs a few microseconds
  of Python run while the committer works through a large batch.
"""

from __future__ import annotations

import gc
import sys

GC_THRESHOLD = (50_000, 20, 100)
SWITCH_INTERVAL_S = 0.001


def tune_for_service() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
