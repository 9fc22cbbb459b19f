"""Database engine and group commit.

The embedded default is a SQLite file in the data dir in WAL mode with
``synchronous=FULL``: a commit returns only after it is on disk. PostgreSQL is
used when a ``postgresql+psycopg://`` URL is configured.

A single :class:`Committer` thread owns every write. Callers hand it an
operation (a function of a session) and wait for the result; the committer
runs every operation that is waiting in one transaction and commits once, so
one fsync acknowledges many writes (a raw fsync manages ~260/s here). The
session autoflushes before each query, so an operation sees the writes of the
operations before it in the batch, and inserts that no query separates go out
together. An operation that raises (or whose flush fails) is rolled back
alone: the batch is retried one by one.
No caller is answered before the commit that holds its write returned.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from scheduler import models, tables  # noqa: F401  (tables: registers the layers' tables)

SHARED_KEY = "cntrust.shared"
INSERTS_KEY = "cntrust.inserts"


BEFORE_COMMIT_KEY = "cntrust.before_commit"
AFTER_COMMIT_KEY = "cntrust.after_commit"

SessionHook = Callable[[Session], None]

_INSERTS: dict[sa.Table, sa.Insert] = {}  # each table's Core insert, built once


def before_commit(session: Session, hook: SessionHook) -> None:
    """Run ``hook(session)`` once, just before this transaction commits (inside it).

    Registering the same hook twice in one transaction runs it once, so an operation
    can register per item and a batch still does its work (e.g. a log append) once.
    """
    hooks: list[SessionHook] = session.info.setdefault(BEFORE_COMMIT_KEY, [])
    if hook not in hooks:
        hooks.append(hook)


def after_commit(session: Session, hook: Callable[[], None]) -> None:
    """Run ``hook()`` once after this transaction committed (never if it rolled back)."""
    hooks: list[Callable[[], None]] = session.info.setdefault(AFTER_COMMIT_KEY, [])
    if hook not in hooks:
        hooks.append(hook)


def insert_at_commit(session: Session, table: sa.Table, row: dict[str, Any]) -> None:
    """Insert ``row`` into ``table`` with this transaction, just before it commits, in one
    executemany per table with the transaction's other queued rows.

    For rows nothing reads in the transaction that writes them (task events, placement
    decisions). The table's Core insert: the ORM's bulk insert splits a list by which
    values are None (a task's events alternate: no from_state, no node_id, ...), and it
    sent one statement per row."""
    session.info.setdefault(INSERTS_KEY, {}).setdefault(table, []).append(row)


def commit(session: Session) -> list[Callable[[], None]]:
    """Run the before-commit hooks, insert the queued rows (:func:`insert_at_commit`),
    commit; return the after-commit hooks for the caller to run."""
    for hook in session.info.pop(BEFORE_COMMIT_KEY, []):
        hook(session)
    for table, rows in session.info.pop(INSERTS_KEY, {}).items():
        insert = _INSERTS.get(table)
        if insert is None:
            insert = _INSERTS[table] = sa.insert(table)
        session.execute(insert, rows)
    after: list[Callable[[], None]] = session.info.pop(AFTER_COMMIT_KEY, [])
    session.commit()
    return after


def _resolve(future: Future[Any], result: Any) -> None:
    """Answer a waiting caller; a caller that gave up (cancelled, e.g. at shutdown or on a
    client disconnect) is skipped — its write is committed either way, and the committer
    thread must never die on it."""
    if not future.cancelled():
        with contextlib.suppress(InvalidStateError):
            future.set_result(result)


def _reject(future: Future[Any], exc: BaseException) -> None:
    if not future.cancelled():
        with contextlib.suppress(InvalidStateError):
            future.set_exception(exc)


def _run_after(hooks: list[Callable[[], None]]) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception:  # the write is committed and acknowledged either way
            log.exception("after-commit hook failed")


log = logging.getLogger(__name__)

T = TypeVar("T")
Operation = Callable[[Session], T]

MAX_BATCH = 256


def create_db_engine(url: str) -> Engine:
    """Create the engine; tables are created if missing."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=16,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    else:
        engine = sa.create_engine(url, pool_size=8, max_overflow=16, pool_pre_ping=True)
    existing = sa.inspect(engine).has_table(models.Task.__tablename__)
    SQLModel.metadata.create_all(engine)
    if existing:  # a fresh database got every index with its tables
        _create_missing_indexes(engine)
    return engine


def _create_missing_indexes(engine: Engine) -> None:
    """Make the indexes a later version added to tables that already existed (create_all
    makes missing tables only), so a data dir from an earlier version keeps working. One
    query lists the database's indexes; checking each index alone cost ~2 ms apiece on
    PostgreSQL."""
    if engine.dialect.name == "sqlite":
        listing = "SELECT name FROM sqlite_master WHERE type = 'index'"
    else:
        listing = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    with engine.connect() as conn:
        present = {row[0] for row in conn.exec_driver_sql(listing)}
    for table in SQLModel.metadata.sorted_tables:
        for index in table.indexes:
            if index.name not in present:
                index.create(engine)


@dataclass
class _Pending:
    op: Operation[Any]
    future: Future[Any] = field(default_factory=Future)


class Committer:
    """Runs write operations in batches, one transaction and one commit per batch."""

    def __init__(self, engine: Engine, *, on_commit: Callable[[], None] | None = None) -> None:
        self._engine = engine
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._on_commit = on_commit
        # process-wide cache for facts that never become false (e.g. a tenant exists)
        self.shared: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, name="cntrust-committer", daemon=True)
        self._closed = False
        self.batches = 0
        self.operations = 0
        self._thread.start()

    def submit(self, op: Operation[T]) -> Future[T]:
        if self._closed:
            raise RuntimeError("committer is closed")
        pending = _Pending(op)
        self._queue.put(pending)
        return pending.future

    def run(self, op: Operation[T], timeout: float = 60.0) -> T:
        """Run ``op`` durably and return its result (re-raises its error)."""
        return self.submit(op).result(timeout)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._execute(batch)
            if stop:
                return

    def _execute(self, batch: list[_Pending]) -> None:
        results: list[tuple[_Pending, Any]] = []
        try:
            with Session(self._engine, expire_on_commit=False) as session:
                session.info[SHARED_KEY] = self.shared
                for pending in batch:
                    results.append((pending, pending.op(session)))
                after = commit(session)
        except Exception:
            if len(batch) == 1:
                self._fail(batch[0])
                return
            # one operation failed: run each alone so only that one fails
            for pending in batch:
                self._execute([pending])
            return
        self.batches += 1
        self.operations += len(batch)
        _run_after(after)
        if self._on_commit is not None:
            try:
                self._on_commit()
            except Exception:  # a listener must never lose an acknowledged write
                log.exception("commit listener failed")
        for pending, result in results:
            _resolve(pending.future, result)

    def _fail(self, pending: _Pending) -> None:
        for attempt in range(3):
            try:
                with Session(self._engine, expire_on_commit=False) as session:
                    session.info[SHARED_KEY] = self.shared
                    result = pending.op(session)
                    _run_after(commit(session))
                _resolve(pending.future, result)
                return
            except sa.exc.OperationalError as exc:  # e.g. "database is locked"
                log.warning("write failed (attempt %d): %s", attempt + 1, exc)
                time.sleep(0.05 * (attempt + 1))
            except Exception as exc:
                _reject(pending.future, exc)
                return
        _reject(pending.future, RuntimeError("database write failed after retries"))
