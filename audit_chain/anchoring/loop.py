"""The anchoring loop: a step function the scheduler runs in a background thread.

`AnchorLoop.step(state, head)` looks at the log's latest tree head and the
persisted `AnchorState`, does at most one round of RPC work, and returns a
`StepResult` with the new state (for the caller to persist) and any anchors that
reached K confirmations. It never raises for chain trouble: an unreachable RPC
or a refused transaction is recorded in the state with an exponential back-off,
so the caller's appends never wait on the chain.

Policy: anchor when the log grew by `every_entries` since the last anchor, or
`every_s` passed since the last anchor started and the log grew at all
(defaults 65,536 entries / 10 minutes). The first anchor is sent as soon as the
log is non-empty. One transaction per anchor, whatever the number of entries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from audit_chain.anchoring.anchorer import Anchorer
from audit_chain.anchoring.errors import (
    AnchoringError,
    AnchorRejectedError,
    AnchorRevertedError,
)
from audit_chain.anchoring.records import (
    MAX_HISTORY,
    AnchorRecord,
    AnchorState,
    hash32_hex,
)


@dataclass(frozen=True)
class TreeHead:
    """The log's latest checkpoint as the loop needs it: tree size and root hash."""

    tree_size: int
    root: bytes


@dataclass(frozen=True)
class AnchorPolicy:
    """When to anchor and how to back off.

    `reorg_watch_blocks`: a confirmed anchor is re-checked for reorgs until it is
    this many blocks deep.
    """

    every_entries: int = 65_536
    every_s: float = 600.0
    retry_base_s: float = 1.0
    retry_max_s: float = 300.0
    reorg_watch_blocks: int = 64

    def __post_init__(self) -> None:
        if self.every_entries < 1 or self.every_s <= 0:
            raise ValueError("every_entries and every_s must be positive")
        if self.retry_base_s <= 0 or self.retry_max_s < self.retry_base_s:
            raise ValueError("retry_base_s must be positive and <= retry_max_s")


@dataclass(frozen=True)
class StepResult:
    """What one step did.

    `action` is one of: "idle", "backoff", "sent", "waiting", "anchored",
    "reorg", "error". `anchored` holds anchors confirmed in this step (persist them).
    `orphaned` holds a confirmed anchor whose block left the chain in this step
    (mark it superseded; its re-anchoring arrives later in `anchored`). `error` is
    the anchoring error this step hit, if any (already reflected in `state.retry_at`).
    """

    state: AnchorState
    action: str
    anchored: tuple[AnchorRecord, ...] = ()
    error: AnchoringError | None = None
    orphaned: tuple[AnchorRecord, ...] = ()

    @property
    def changed(self) -> bool:
        return self.action != "idle" and self.action != "backoff"


class AnchorLoop:
    """Decides when to anchor and drives `Anchorer` one step at a time."""

    def __init__(
        self,
        anchorer: Anchorer,
        *,
        policy: AnchorPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._anchorer = anchorer
        self._policy = policy or AnchorPolicy()
        self._clock = clock

    @property
    def policy(self) -> AnchorPolicy:
        return self._policy

    def due(self, state: AnchorState, head: TreeHead | None, now: float) -> bool:
        """Whether the policy asks for a new anchor of `head` now."""
        if head is None or head.tree_size <= state.anchored_tree_size:
            return False
        if state.last_started_at is None or not state.anchors:
            return True
        grown = head.tree_size - state.anchored_tree_size
        return grown >= self._policy.every_entries or (
            now - state.last_started_at >= self._policy.every_s
        )

    def step(self, state: AnchorState, head: TreeHead | None) -> StepResult:
        """Run one round. Never raises an `AnchoringError`; returns it in the result."""
        now = self._clock()
        if state.retry_at is not None and now < state.retry_at:
            return StepResult(state, "backoff")
        try:
            result = self._advance(state, head, now)
        except AnchoringError as exc:
            return self._failed(state, exc, now)
        if state.consecutive_failures or state.retry_at is not None or state.last_error:
            result = replace(
                result,
                state=replace(result.state, consecutive_failures=0, retry_at=None, last_error=None),
            )
            if result.action == "idle":
                result = replace(result, action="waiting")
        return result

    def _failed(self, state: AnchorState, exc: AnchoringError, now: float) -> StepResult:
        failures = state.consecutive_failures + 1
        delay = min(self._policy.retry_base_s * 2 ** (failures - 1), self._policy.retry_max_s)
        pending = state.pending
        if isinstance(exc, AnchorRevertedError | AnchorRejectedError):
            # The contract will not take this anchor: drop it; the next due head is sent fresh.
            pending = None
        new_state = replace(
            state,
            pending=pending,
            consecutive_failures=failures,
            retry_at=now + delay,
            last_error=f"{type(exc).__name__}: {exc}"[:4096],
        )
        return StepResult(new_state, "error", error=exc)

    def _advance(self, state: AnchorState, head: TreeHead | None, now: float) -> StepResult:
        # 1. A confirmed anchor whose block left the chain goes back to pending.
        latest = state.latest
        watch = state.watch
        if (
            state.pending is None
            and latest is not None
            and watch is not None
            and watch.tree_size == latest.tree_size
            and self._anchorer.head_block_number() - latest.block_number
            < self._policy.reorg_watch_blocks
            and not self._anchorer.is_canonical(latest)
        ):
            pending = replace(watch, included=None, reorgs=watch.reorgs + 1)
            reorged = replace(state, anchors=state.anchors[:-1], pending=pending, watch=None)
            return StepResult(reorged, "reorg", orphaned=(latest,))
        # 2. Follow the anchor in flight.
        if state.pending is not None:
            outcome = self._anchorer.poll(state.pending)
            if isinstance(outcome, AnchorRecord):
                anchors = (*state.anchors, outcome)[-MAX_HISTORY:]
                done = replace(state, pending=None, anchors=anchors, watch=state.pending)
                return StepResult(done, "anchored", anchored=(outcome,))
            action = "waiting" if outcome == state.pending else "sent"
            return StepResult(replace(state, pending=outcome), action)
        # 3. Start a new anchor when the policy says so.
        if head is not None and self.due(state, head, now):
            pending = self._anchorer.anchor(state.log_id, head.tree_size, head.root)
            started = replace(state, pending=pending, last_started_at=now)
            return StepResult(started, "sent")
        return StepResult(state, "idle")


def new_state(log_id: bytes | str) -> AnchorState:
    """A fresh anchoring state for `log_id` (32 bytes)."""
    return AnchorState(log_id=hash32_hex(log_id, field_name="log_id"))


class AnchorWorker:
    """Runs an `AnchorLoop` in a daemon thread every `interval_s`.

    `read_head` returns the log's latest tree head (or None), cheaply and without
    blocking appends; `save_state` persists the state after each changing step;
    `on_anchored` receives each confirmed anchor, `on_orphaned` each confirmed anchor
    whose block left the chain (a re-anchor follows). Exceptions from these callbacks
    stop the worker and are kept in `failure`.
    """

    def __init__(
        self,
        loop: AnchorLoop,
        state: AnchorState,
        *,
        read_head: Callable[[], TreeHead | None],
        save_state: Callable[[AnchorState], None],
        on_anchored: Callable[[AnchorRecord], None] | None = None,
        on_orphaned: Callable[[AnchorRecord], None] | None = None,
        interval_s: float = 1.0,
    ) -> None:
        self._loop = loop
        self._state = state
        self._read_head = read_head
        self._save_state = save_state
        self._on_anchored = on_anchored
        self._on_orphaned = on_orphaned
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None
        self.last_result: StepResult | None = None

    @property
    def state(self) -> AnchorState:
        with self._lock:
            return self._state

    def run_once(self) -> StepResult:
        """One step, persisted; what the thread does every interval."""
        with self._lock:
            result = self._loop.step(self._state, self._read_head())
            if result.changed or result.action == "error":
                self._save_state(result.state)
            self._state = result.state
            self.last_result = result
        if self._on_orphaned is not None:
            for record in result.orphaned:
                self._on_orphaned(record)
        if self._on_anchored is not None:
            for record in result.anchored:
                self._on_anchored(record)
        return result

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # a callback bug: stop visibly, never spin
                self.failure = exc
                return
            self._stop.wait(self._interval_s)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("worker already started")
        self._thread = threading.Thread(target=self._run, name="cntrust-anchor", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
