"""The task table's indexes: the hot queries stay independent of a node's history, and a
database made by an earlier version gets the indexes added since."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from scheduler import store
from scheduler.db import create_db_engine
from scheduler.models import Task

NEW_INDEXES = ("ix_task_node_state", "ix_task_state_submitted")


def _plan(engine: sa.Engine, stmt: sa.Select, params: dict[str, object]) -> str:
    compiled = stmt.compile(engine)
    values = {**compiled.params, **params}
    assert compiled.positiontup is not None
    args = tuple(values[name] for name in compiled.positiontup)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), args).fetchall()
    return " | ".join(str(row[-1]) for row in rows)


def test_hot_queries_search_an_index_without_sorting(tmp_path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    claim = _plan(engine, store._PLACED_ON_NODE, {"node_id": "n1", "limit": 4})
    assert "USING INDEX ix_task_node_state (node_id=? AND state=?)" in claim
    first = _plan(engine, store._ADMITTED, {"limit": 16})
    assert "USING INDEX ix_task_state_submitted (state=?)" in first
    after = _plan(engine, store._ADMITTED_AFTER, {"limit": 16, "at": 1.0, "id": "x"})
    assert "ix_task_state_submitted (state=? AND (submitted_at,id)>(?,?))" in after
    for plan in (claim, first, after):
        assert "TEMP B-TREE" not in plan  # no sort: the index gives the order


@pytest.mark.parametrize("missing", NEW_INDEXES)
def test_an_earlier_database_gets_the_new_indexes(database_url, missing):
    engine = create_db_engine(database_url)
    index = next(i for i in Task.__table__.indexes if i.name == missing)  # type: ignore[attr-defined]
    index.drop(engine)
    assert missing not in {i["name"] for i in sa.inspect(engine).get_indexes("task")}
    engine.dispose()
    reopened = create_db_engine(database_url)
    assert set(NEW_INDEXES) <= {i["name"] for i in sa.inspect(reopened).get_indexes("task")}
    reopened.dispose()
