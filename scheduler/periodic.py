"""A pass that runs every few seconds on a daemon thread of its own (the replicas' sync
loops), stopped with the service."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Periodic:
    """Run ``tick()`` every ``interval_s`` on a daemon thread named ``name`` until
    :meth:`stop`, which :meth:`start` registers on ``service.close_hooks``.

    A tick that raises is logged with its traceback and retried on the next tick: one bad
    pass never stops the loop."""

    def __init__(self, name: str, tick: Callable[[], None], service: Any) -> None:
        self.name = name
        self.tick = tick
        self.service = service
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, interval_s: float) -> None:
        """Start the thread (once). Raises ValueError for an interval that is not > 0."""
        if not interval_s > 0:
            raise ValueError("interval_s must be > 0")
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name=self.name, daemon=True
        )
        self._thread.start()
        hooks = getattr(self.service, "close_hooks", None)
        if isinstance(hooks, list):
            hooks.append(self.stop)

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.tick()
            except Exception:  # a failed pass is retried on the next tick
                log.exception("%s: pass failed", self.name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
