"""scheduler.models.new_row: the row SQLModel's constructor makes, without its pydantic pass."""

from __future__ import annotations

import pytest
from sqlmodel import Session, SQLModel, create_engine, select

from scheduler.models import Classification, Task, TaskState, new_row

VALUES = {
    "id": "t1",
    "tenant": "alice",
    "state": TaskState.SUBMITTED,
    "command": ["echo", "hi"],
    "cpu": 2.0,
    "region": "eu",
    "submitted_at": 10.0,
    "updated_at": 10.0,
}


def test_same_row_as_the_constructor_defaults_included() -> None:
    fast, slow = new_row(Task, **VALUES), Task(**VALUES)
    for name in Task.model_fields:
        assert getattr(fast, name) == getattr(slow, name), name
    assert fast.classification is Classification.PUBLIC and fast.attempt == 0
    # default factories give each row its own container
    other = new_row(Task, **{**VALUES, "id": "t2"})
    assert other.usage == {} and other.usage is not fast.usage


def test_the_row_is_stored_and_read_back(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    SQLModel.metadata.create_all(engine, tables=[Task.__table__])
    with Session(engine) as session:
        session.add(new_row(Task, **VALUES))
        session.commit()
    with Session(engine) as session:
        row = session.exec(select(Task)).one()
    assert (row.id, row.command, row.cpu, row.memory_mb, row.reason) == (
        "t1",
        ["echo", "hi"],
        2.0,
        256,
        "",
    )
    engine.dispose()


def test_unknown_and_missing_fields_are_refused() -> None:
    with pytest.raises(TypeError, match="no field 'colour'"):
        new_row(Task, **VALUES, colour="red")
    partial = {k: v for k, v in VALUES.items() if k != "tenant"}
    with pytest.raises(ValueError, match="needs 'tenant'"):
        new_row(Task, **partial)
