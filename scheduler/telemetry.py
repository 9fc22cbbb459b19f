"""OpenTelemetry wiring: one trace per task, task/node ids on every span.

Default exporter: a bounded in-memory ring (the console and tests read it);
``console_traces`` adds a console exporter; ``otlp_endpoint`` adds OTLP/HTTP.
The trace context of a task travels as a W3C ``traceparent`` stored with the
task, so submit, admit, place, run (in the agent) and report share one trace.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
# version 00, as this process writes it (``traceparent_of``); anything else goes to the propagator
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


class RingExporter(SpanExporter):
    """Keeps the last ``capacity`` finished spans in memory."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._spans: deque[ReadableSpan] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self._spans.extend(spans)
        return SpanExportResult.SUCCESS

    def spans(self) -> list[ReadableSpan]:
        with self._lock:
            return list(self._spans)

    def shutdown(self) -> None:
        return None


class Telemetry:
    def __init__(
        self, service: str, *, console: bool = False, otlp_endpoint: str | None = None
    ) -> None:
        resource = Resource.create({"service.name": service})
        self.ring = RingExporter()
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(SimpleSpanProcessor(self.ring))
        if console:
            self.provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self.provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint))
            )
        self.tracer = self.provider.get_tracer("cntrust")
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[self.metric_reader])
        meter = self.meter_provider.get_meter("cntrust")
        # tasks by state: read from the store when metrics are collected, not counted per
        # transition (an SDK counter.add costs ~0.1 ms on the hot path)
        self.tasks_by_state: Callable[[], dict[str, int]] = dict
        meter.create_observable_gauge(
            "cntrust.tasks", callbacks=[self._observe_tasks], description="tasks by state"
        )
        self.placement_latency = meter.create_histogram(
            "cntrust.placement.latency", unit="ms", description="time to place a task"
        )

    @contextmanager
    def span(self, name: str, parent: str | None = None, **attributes: Any) -> Iterator[trace.Span]:
        """A span under ``parent`` (a traceparent), ``cntrust.<key>`` attributes set at start.

        The span is not made the current span: every span here names its parent
        explicitly (the task's traceparent), and attaching it to the context cost a third
        of the span on the request path. An exception is recorded on the span, as
        ``start_as_current_span`` would, and re-raised."""
        span = self.tracer.start_span(
            name,
            context=context_from(parent),
            attributes={f"cntrust.{k}": v for k, v in attributes.items() if v is not None},
        )
        try:
            yield span
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            span.end()

    def _observe_tasks(self, _options: CallbackOptions) -> Iterable[Observation]:
        for state, count in self.tasks_by_state().items():
            yield Observation(count, {"state": state})

    def shutdown(self) -> None:
        self.provider.shutdown()
        self.meter_provider.shutdown()


def context_from(traceparent: str | None) -> Context | None:
    """The context of a W3C traceparent (``00-<trace id>-<span id>-<flags>``); None for an
    absent one, and an empty context (a new trace) for a malformed one, as the W3C
    propagator does."""
    if not traceparent:
        return None
    match = _TRACEPARENT.fullmatch(traceparent)
    if match is None or match[1] == "0" * 32 or match[2] == "0" * 16:
        return _propagator.extract({"traceparent": traceparent})  # its rules for the rest
    span = NonRecordingSpan(
        SpanContext(
            int(match[1], 16),
            int(match[2], 16),
            is_remote=True,
            trace_flags=TraceFlags(int(match[3], 16)),
        )
    )
    return trace.set_span_in_context(span)


def traceparent_of(span: trace.Span) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
