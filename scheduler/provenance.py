"""Provenance layer: every finished task gets exactly one signed log entry, written in the
transaction that marks it finished; checkpoints are published, optionally anchored on chain.

Wiring: ``ProvenanceLayer(service, log_key)`` appends a hook to ``service.finished_hooks``;
``start()`` runs the checkpoint publisher (and the anchor worker), ``stop()`` ends them.
:func:`layer_of` finds the layer of a service (the ``/log`` routes use it).

Invariants:
- the finished hook builds and signs the task-execution record and queues it in the
  session; ONE before-commit hook per transaction appends every queued entry with
  ``TiledLog.prepare_batch`` and writes the tiles, the new tree state, the task -> leaf
  index rows and the tenant salts into that same transaction; ONE after-commit hook
  installs the batch in memory (``TiledLog.commit``). A transaction that rolls back
  (the committer then retries its operations one by one) never advances the log;
- the before-commit hook reads the stored tree state in the transaction (``FOR UPDATE`` on
  PostgreSQL) and reloads the in-memory log from the database whenever they differ, so a
  commit whose outcome was lost (or another writer) can never fork the log;
- a checkpoint is published within ``checkpoint_delay_s`` (default 0.25 s, always < 2 s) of
  growth by :class:`~audit_chain.CheckpointPublisher`, which refuses a smaller or
  inconsistent tree; publication is serialised by a lock;
- the tenant enters the record only as a salted commitment; name and salt are kept in
  ``prov_tenant_salt`` (delete the row to erase).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, col

from audit_chain import (
    Checkpoint,
    CheckpointPublisher,
    LogStateError,
    NodeResultSignature,
    NoteSigner,
    ResponseAction,
    TaskExecution,
    TiledLog,
    build_bundle,
    commit,
    new_salt,
    open_checkpoint,
    sign_statement,
    statement_for,
    usage_counters,
)
from scheduler.db import after_commit, before_commit
from scheduler.errors import NotFound
from scheduler.models import Task, TaskState
from scheduler.node_results import signed_result_of
from scheduler.provenance_actions import record_of, response_action
from scheduler.provenance_bundles import anchored_checkpoint, bundle_basis
from scheduler.provenance_fields import placement_fields
from scheduler.provenance_store import DbTileStore
from scheduler.tables.provenance import ProvAnchor, ProvTaskEntry, ProvTenantSalt

if TYPE_CHECKING:
    from audit_chain.anchoring import AnchorRecord, AnchorWorker, TreeHead
    from scheduler.service import Service

log = logging.getLogger(__name__)

QUEUE_KEY = "cntrust.provenance.queue"
LOG_KEY_FILE = Path("keys") / "log.skey"
ANCHOR_STATE_FILE = "anchor-state.json"
_OUTCOMES = {
    TaskState.SUCCEEDED: "succeeded",
    TaskState.FAILED: "failed",
    TaskState.CANCELLED: "cancelled",
    TaskState.REJECTED: "rejected",
}
# the tables' Core inserts, built once (one executemany each per batch, no ORM bulk insert)
_INSERT_TASK_ENTRIES = sa.insert(ProvTaskEntry.__table__)  # type: ignore[attr-defined]
_INSERT_TENANT_SALTS = sa.insert(ProvTenantSalt.__table__)  # type: ignore[attr-defined]
_LAYERS: weakref.WeakKeyDictionary[Service, ProvenanceLayer] = weakref.WeakKeyDictionary()


def layer_of(service: Service) -> ProvenanceLayer | None:
    """The provenance layer installed on ``service``, if any."""
    return _LAYERS.get(service)


def load_or_create_log_key(data_dir: Path, origin: str) -> NoteSigner:
    """The log's signer key from ``data_dir/keys/log.skey`` (created mode 0600 if absent).

    Raises:
        ValueError: the stored key's name is not ``origin`` or the file is group/other
            readable.
        audit_chain.MalformedKeyError: the file does not hold a signer key.
    """
    path = data_dir / LOG_KEY_FILE
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise ValueError(f"log key {path} must not be accessible by group or others")
        signer = NoteSigner.from_skey(path.read_text(encoding="ascii").strip())
        if signer.name != origin:
            raise ValueError(f"log key {path} is for {signer.name!r}, not {origin!r}")
        return signer
    signer = NoteSigner.generate(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(signer.skey + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return signer


def command_digest(command: list[str]) -> str:
    """``sha256:`` of the command as compact JSON (UTF-8, no spaces, list order kept)."""
    text = json.dumps(command, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _usage_counters(usage: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """Scheduler usage (``wall_s``, ``cpu_s``, ``max_rss_kb``) as integer counters in the
    predicate's names (``wallMs``, ``cpuMs``, ``maxRssBytes``): the counters the node signs
    (:func:`audit_chain.usage_counters`)."""
    return usage_counters(usage)


def _trace_id(trace_parent: str | None) -> str | None:
    parts = (trace_parent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
        trace = parts[1].lower()
        if all(c in "0123456789abcdef" for c in trace):
            return trace
    return None


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True)
class _Queued:
    entry: bytes
    task_id: str | None = None
    tenant: str | None = None
    salt: bytes | None = None


class ProvenanceLayer:
    """The provenance log wired into a :class:`~scheduler.service.Service`.

    ``anchoring=True`` anchors the latest checkpoint on the embedded chain in
    ``chain_dir`` (default ``data_dir/chain``) every ``anchor_every_entries`` entries or
    ``anchor_every_s`` seconds; pass an ``audit_chain.anchoring.Anchorer`` as ``anchorer``
    to anchor on another chain (``--chain-rpc``) instead. Raises ValueError when ``origin``
    is not the key's name (verifiers require the checkpoint origin to be the log key's
    name), RuntimeError when the service already has a layer.
    """

    def __init__(
        self,
        service: Service,
        log_key: NoteSigner,
        origin: str | None = None,
        *,
        checkpoint_delay_s: float = 0.25,
        anchoring: bool = False,
        chain_dir: Path | None = None,
        anchor_every_entries: int = 65_536,
        anchor_every_s: float = 600.0,
        anchor_interval_s: float = 1.0,
        anchorer: Any = None,
    ) -> None:
        origin = log_key.name if origin is None else origin
        if origin != log_key.name:
            raise ValueError(f"origin {origin!r} must be the log key's name {log_key.name!r}")
        if not 0 <= checkpoint_delay_s < 2:
            raise ValueError("checkpoint_delay_s must be in [0, 2)")
        if layer_of(service) is not None:  # two layers would log every task twice
            raise RuntimeError("a provenance layer is already installed on this service")
        self.service = service
        self.log_key = log_key
        self.origin = origin
        self.log_id = hashlib.sha256(log_key.verifier.vkey.encode()).digest()
        self.store = DbTileStore(service.engine, origin, clock=service.clock)
        self.log = TiledLog(self.store)
        self._checkpoint_delay_s = checkpoint_delay_s
        self._seq_lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._latest: tuple[bytes, Checkpoint] | None = None
        self._grown = threading.Event()
        self._stop = threading.Event()
        self._publisher: threading.Thread | None = None
        self._anchoring = anchoring
        self._chain_dir = chain_dir or service.settings.data_dir / "chain"
        self._anchor_every_entries = anchor_every_entries
        self._anchor_every_s = anchor_every_s
        self._anchor_interval_s = anchor_interval_s
        self._anchorer = anchorer
        self.anchor_worker: AnchorWorker | None = None
        self.chain: Any = None
        service.finished_hooks.append(self.on_finished)
        service.response_hooks.append(self.on_response)
        _LAYERS[service] = self

    @classmethod
    def for_service(cls, service: Service, **kwargs: Any) -> ProvenanceLayer:
        """The layer with the log key kept in the data dir, origin ``<trust_domain>/log``."""
        origin = f"{service.settings.trust_domain}/log"
        key = load_or_create_log_key(service.settings.data_dir, origin)
        return cls(service, key, origin, **kwargs)

    # -- records ---------------------------------------------------------------
    def task_record(
        self, task: Task, salt: bytes, node_result: NodeResultSignature | None = None
    ) -> bytes:
        """The signed task-execution record (canonical DSSE bytes) of a task in a final
        state (succeeded, failed, cancelled, rejected), with what placement relied on
        (:func:`scheduler.provenance_fields.placement_fields`) and the node's signature."""
        finished = task.finished_at if task.finished_at is not None else task.updated_at
        started = task.started_at if task.started_at is not None else task.submitted_at
        node = None
        if task.node_id is not None:
            node = f"spiffe://{self.service.settings.trust_domain}/node/{task.node_id}"
        record = TaskExecution(
            task_id=task.id,
            tenant=commit(task.tenant, salt),
            node_spiffe_id=node,
            command_digest=command_digest(list(task.command)),
            started_on=_utc(min(started, finished)),
            finished_on=_utc(finished),
            outcome=_OUTCOMES.get(task.state, "failed"),
            output_digest=task.output_digest,
            exit_code=task.exit_code,
            resource_usage=_usage_counters(dict(task.usage or {})),
            trace_id=_trace_id(task.trace_parent),
            node_result=node_result,
            **placement_fields(task),
        )
        return sign_statement(statement_for(record), self.log_key).canonical_bytes()

    def on_finished(self, session: Session, task: Task) -> None:
        """``finished_hooks`` hook: queue the task's record for this transaction."""
        salt = new_salt()
        entry = self.task_record(task, salt, signed_result_of(session, task))
        self._queue(session, _Queued(entry, task.id, task.tenant, salt))

    def on_response(self, session: Session, action: Any) -> None:
        """``Service.response_hooks`` hook: queue the record of a security response action
        (a :class:`scheduler.service.ResponseAction`) in the action's transaction."""
        self.record_response_action(session, record_of(action))

    def record_response_action(
        self, session: Session, action: ResponseAction | str, *args: Any, **kwargs: Any
    ) -> None:
        """Queue a security response action's record in ``session``'s transaction: a built
        :class:`~audit_chain.ResponseAction`, or the arguments of
        :func:`scheduler.provenance_actions.response_action` (``action, subject, reason,
        actor, ...``). Raises ValueError for an unknown action or subject kind."""
        if not isinstance(action, ResponseAction):
            action = response_action(action, *args, at=self.service.clock(), **kwargs)
        entry = sign_statement(statement_for(action), self.log_key).canonical_bytes()
        self._queue(session, _Queued(entry))

    def _queue(self, session: Session, item: _Queued) -> None:
        session.info.setdefault(QUEUE_KEY, []).append(item)
        before_commit(session, self._before_commit)

    # -- sequencing --------------------------------------------------------------
    def _before_commit(self, session: Session) -> None:
        items: list[_Queued] = session.info.pop(QUEUE_KEY, [])
        if not items:
            return
        with self._seq_lock:
            state = self.store.lock_state(session)
            size = 0 if state is None else state.tree_size
            if size != self.log.tree_size or (state is not None and state.root != self.log.root):
                log.warning(
                    "provenance log at %d, database at %d: reloading", self.log.tree_size, size
                )
                self.log = TiledLog(self.store)
                if self.log.tree_size != size:
                    raise LogStateError(f"database log state moved under us ({size})")
            log_ = self.log
            prepared = log_.prepare_batch([item.entry for item in items])
            self.store.write_batch_in(session, prepared.batch, state)
        first = prepared.result.first_index
        tasks = [
            {"task_id": item.task_id, "leaf_index": first + i}
            for i, item in enumerate(items)
            if item.task_id is not None
        ]
        salts = [
            {"task_id": item.task_id, "tenant": item.tenant, "salt": item.salt}
            for item in items
            if item.task_id is not None
        ]
        if tasks:
            session.execute(_INSERT_TASK_ENTRIES, tasks)
            session.execute(_INSERT_TENANT_SALTS, salts)

        def install() -> None:
            try:
                log_.commit(prepared)
            except LogStateError:
                log.warning("provenance batch not installed; reloading from the database")
                with self._seq_lock:
                    self.log = TiledLog(self.store)
            self._grown.set()

        after_commit(session, install)

    # -- checkpoints -------------------------------------------------------------
    def publish_checkpoint(self) -> bytes | None:
        """Sign and store a checkpoint of the current tree (None while the log is empty).

        Raises:
            audit_chain.CheckpointRegressionError: the tree is smaller than, or
                inconsistent with, the last published checkpoint.
        """
        with self._publish_lock:
            log_ = self.log
            if log_.tree_size == 0:
                return None
            latest = self._latest
            if latest is not None and latest[1].tree_size == log_.tree_size:
                return latest[0]
            note = CheckpointPublisher(log_, self.log_key, origin=self.origin).publish()
            self._latest = (note, open_checkpoint(note, self.log_key.verifier))
            return note

    def latest_checkpoint(self) -> bytes | None:
        """The latest published checkpoint note (from memory, else the database)."""
        latest = self._latest
        return latest[0] if latest is not None else self.store.read_checkpoint()

    def _publish_loop(self) -> None:
        while not self._stop.is_set():
            if not self._grown.wait(timeout=1.0):
                continue
            self._grown.clear()
            if self._stop.wait(self._checkpoint_delay_s):
                return
            try:
                self.publish_checkpoint()
            except Exception:  # keep publishing later; the refusal is logged loudly
                log.exception("checkpoint publication failed")

    # -- anchoring -----------------------------------------------------------------
    def _head(self) -> TreeHead | None:
        from audit_chain.anchoring import TreeHead

        latest = self._latest
        if latest is None:
            return None
        return TreeHead(latest[1].tree_size, latest[1].root)

    def _store_anchor(self, record: AnchorRecord) -> None:
        row = ProvAnchor(**record.to_dict(), anchored_at=self.service.clock())

        def op(session: Session) -> None:
            session.add(row)

        self.service.write_sync(op)

    def _orphan_anchor(self, record: AnchorRecord) -> None:
        def op(session: Session) -> None:
            session.execute(
                sa.update(ProvAnchor)
                .where(col(ProvAnchor.tx_hash) == record.tx_hash)
                .values(superseded=True)
            )

        self.service.write_sync(op)

    def _start_anchoring(self) -> None:
        from audit_chain.anchoring import (
            Anchorer,
            AnchorLoop,
            AnchorPolicy,
            AnchorWorker,
            EmbeddedChain,
            load_state_file,
            new_state,
            save_state_file,
        )

        anchorer = self._anchorer
        if anchorer is None:
            self.chain = EmbeddedChain(self._chain_dir)
            anchorer = Anchorer(self.chain.web3, self.chain.contract_address, self.chain.account)
        self._chain_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        policy = AnchorPolicy(
            every_entries=self._anchor_every_entries, every_s=self._anchor_every_s
        )
        state_path = self._chain_dir / ANCHOR_STATE_FILE
        state = load_state_file(state_path) or new_state(self.log_id)
        self.anchor_worker = AnchorWorker(
            AnchorLoop(anchorer, policy=policy),
            state,
            read_head=self._head,
            save_state=lambda s: save_state_file(state_path, s),
            on_anchored=self._store_anchor,
            on_orphaned=self._orphan_anchor,
            interval_s=self._anchor_interval_s,
        )
        self.anchor_worker.start()

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Start the checkpoint publisher (and the anchor worker when anchoring)."""
        if self._publisher is not None:
            raise RuntimeError("provenance layer already started")
        self._stop.clear()
        if self.log.tree_size:
            self._grown.set()  # publish what an earlier run left unpublished
        self._publisher = threading.Thread(
            target=self._publish_loop, name="cntrust-checkpoints", daemon=True
        )
        self._publisher.start()
        if self._anchoring:
            self._start_anchoring()

    def stop(self) -> None:
        """Stop the background threads (publishing a last checkpoint first)."""
        self._stop.set()
        if self._publisher is not None:
            self._publisher.join(timeout=10)
            self._publisher = None
        if self.anchor_worker is not None:
            self.anchor_worker.stop()
            self.anchor_worker = None
        try:
            self.publish_checkpoint()
        except Exception:
            log.exception("final checkpoint publication failed")

    # -- erasure -------------------------------------------------------------------
    def erase_tenant(self, tenant: str) -> int:
        """Delete the tenant's names and salts kept beside the log; return how many.

        The records keep their commitments, so every leaf hash, proof and anchor stays valid
        while the commitments no longer link to the tenant."""

        def op(session: Session) -> int:
            result = session.execute(
                sa.delete(ProvTenantSalt).where(col(ProvTenantSalt.tenant) == tenant)
            )
            return int(getattr(result, "rowcount", 0) or 0)

        return self.service.write_sync(op)

    # -- bundles -------------------------------------------------------------------
    def leaf_index_of(self, task_id: str) -> int:
        """The leaf index of a task's record. Raises NotFound when it has none."""
        with self.service.read() as session:
            row = session.get(ProvTaskEntry, task_id)
        if row is None:
            raise NotFound(f"task {task_id} has no provenance record")
        return row.leaf_index

    def bundle_for(self, task_id: str) -> bytes:
        """The task's proof bundle (canonical JSON): against the nearest anchored checkpoint
        when an anchor covers the entry (:mod:`scheduler.provenance_bundles`), else against
        the latest checkpoint (published now if none covers it yet). Raises NotFound when
        the task has no record."""
        leaf = self.leaf_index_of(task_id)
        deadline = time.monotonic() + 2.0
        while self.log.tree_size <= leaf and time.monotonic() < deadline:
            time.sleep(0.01)  # committed, about to be installed by the after-commit hook
        log_ = self.log
        with self.service.read() as session:
            basis = bundle_basis(session, leaf, log_.tree_size)
        note, anchor = basis.note, basis.anchor
        if anchor is not None and note is None:
            note = anchored_checkpoint(log_, anchor, self.log_key)
            anchor = anchor if note is not None else None
        if note is None:
            note = self.store.checkpoint_covering(leaf)
        if note is None:
            note = self.publish_checkpoint()
        if note is None:
            raise NotFound(f"task {task_id} has no provenance record yet")
        return build_bundle(log_, leaf, note, self.log_key.verifier, anchor=anchor).to_bytes()
