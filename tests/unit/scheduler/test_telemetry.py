"""Spans and the traceparent a task carries between them."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from scheduler.telemetry import Telemetry, context_from, traceparent_of


def _w3c(context: object) -> trace.SpanContext:
    return trace.get_current_span(context).get_span_context()  # type: ignore[arg-type]


def test_a_child_span_joins_its_parents_trace():
    tel = Telemetry("test")
    with tel.span("task.submit", task_id="t1", tenant="acme", region=None) as parent:
        parent_tp = traceparent_of(parent)
    with tel.span("task.place", parent_tp, task_id="t1") as child:
        pass
    spans = {s.name: s for s in tel.ring.spans()}
    submit, place = spans["task.submit"], spans["task.place"]
    assert place.context.trace_id == submit.context.trace_id
    assert place.parent is not None and place.parent.span_id == submit.context.span_id
    assert dict(submit.attributes or {}) == {"cntrust.task_id": "t1", "cntrust.tenant": "acme"}
    assert child.get_span_context().trace_id == parent.get_span_context().trace_id


def test_traceparent_matches_the_w3c_propagator():
    tel = Telemetry("test")
    with tel.span("s") as span:
        ours = traceparent_of(span)
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
    assert ours == carrier["traceparent"]
    assert _w3c(context_from(ours)) == _w3c(
        TraceContextTextMapPropagator().extract({"traceparent": ours})
    )


@pytest.mark.parametrize(
    "bad",
    [
        "junk",
        "00-" + "0" * 32 + "-0a292fb9178a16bc-01",  # all-zero trace id
        "00-0dfe193c7eedd4c62969a646a55f032e-" + "0" * 16 + "-01",  # all-zero span id
        "00-0DFE193C7EEDD4C62969A646A55F032E-0a292fb9178a16bc-01",  # uppercase
        "00-0dfe193c7eedd4c62969a646a55f032e-0a292fb9178a16bc-01-extra",
    ],
)
def test_a_malformed_traceparent_starts_a_new_trace(bad):
    assert not _w3c(context_from(bad)).is_valid
    assert _w3c(context_from(bad)) == _w3c(
        TraceContextTextMapPropagator().extract({"traceparent": bad})
    )
    tel = Telemetry("test")
    with tel.span("s", bad):
        pass
    (span,) = tel.ring.spans()
    assert span.parent is None


def test_an_exception_is_recorded_and_re_raised():
    tel = Telemetry("test")
    with pytest.raises(ValueError, match="boom"), tel.span("task.report", task_id="t1"):
        raise ValueError("boom")
    (span,) = tel.ring.spans()
    assert span.status.status_code == StatusCode.ERROR
    assert "ValueError: boom" in (span.status.description or "")
    assert [e.name for e in span.events] == ["exception"]
    assert span.end_time is not None
