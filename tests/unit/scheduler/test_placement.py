"""Placement pipeline: filters say why, rankers spread load, results are deterministic."""

from __future__ import annotations

from scheduler.placement import NodeView, PlacementPipeline, TaskRequest


def node(id: str, **kw) -> NodeView:
    base = dict(
        region="east", operator="op", cpu_cores=4.0, memory_mb=4096, accelerators=(),
        cpu_used=0.0, memory_used_mb=0, gpu_used=0, active_tasks=0,
    )  # fmt: skip
    base.update(kw)
    return NodeView(id=id, **base)


def task(**kw) -> TaskRequest:
    base = dict(
        id="t", tenant="a", cpu=1.0, memory_mb=128, gpu=0, accelerator_kind=None,
        classification="public", region=None,
    )  # fmt: skip
    base.update(kw)
    return TaskRequest(**base)


def test_prefers_the_least_loaded_node():
    result = PlacementPipeline().place(task(), [node("a", cpu_used=3), node("b", cpu_used=1)])
    assert result.node_id == "b"
    assert [n for n, _ in result.scores] == ["b", "a"]


def test_ties_break_by_id():
    assert PlacementPipeline().place(task(), [node("b"), node("a")]).node_id == "a"


def test_exclusions_carry_reasons():
    nodes = [node("a", cpu_cores=0.5), node("b", region="west")]
    result = PlacementPipeline().place(task(region="east"), nodes)
    assert result.node_id is None
    reasons = {(e.node_id, e.stage) for e in result.exclusions}
    assert reasons == {("a", "fit"), ("b", "region")}
    assert "no node fits" in result.reason


def test_accelerators_must_be_free():
    gpu_node = node("g", accelerators=(("gpu", 1),), gpu_used=1)
    assert PlacementPipeline().place(task(gpu=1), [gpu_node]).node_id is None
    free = node("h", accelerators=(("gpu", 2),), gpu_used=1)
    assert PlacementPipeline().place(task(gpu=1), [gpu_node, free]).node_id == "h"
    fpga = node("f", accelerators=(("fpga", 1),))
    assert PlacementPipeline().place(task(gpu=1, accelerator_kind="fpga"), [fpga]).node_id == "f"


def test_no_nodes():
    assert PlacementPipeline().place(task(), []).reason == "no nodes online"
