"""Private OpenTelemetry providers for the telemetry tests: the SDK's in-memory span exporter
and metric reader, never the global providers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import eventactors as ea
from eventactors import telemetry

Key = tuple[tuple[str, Any], ...]


@dataclass
class Otel:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    readers: list[InMemoryMetricReader] = field(default_factory=list)

    def instrument(self, engine: ea.Engine) -> None:
        telemetry.instrument(
            engine, tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def finished(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans.get_finished_spans() if span.name == name]

    def collect(self, reader: InMemoryMetricReader | None = None) -> dict[str, Metric]:
        data = (reader or self.metrics).get_metrics_data()
        return {
            metric.name: metric
            for resource in (data.resource_metrics if data is not None else [])
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    def points(self, name: str, reader: InMemoryMetricReader | None = None) -> dict[Key, Any]:
        """The data points of one metric, by their sorted attributes; {} when it has none."""
        metric = self.collect(reader).get(name)
        if metric is None:
            return {}
        return {
            tuple(sorted((point.attributes or {}).items())): point
            for point in metric.data.data_points
        }

    def values(self, name: str, reader: InMemoryMetricReader | None = None) -> dict[Key, Any]:
        return {key: point.value for key, point in self.points(name, reader).items()}


@contextmanager
def private_otel(readers: int = 1) -> Iterator[Otel]:
    """Providers of our own, with `readers` metric readers (as an application exporting to
    Prometheus and OTLP at once has two); shut down afterwards."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metric_readers = [InMemoryMetricReader() for _ in range(readers)]
    meter_provider = MeterProvider(metric_readers=metric_readers)
    try:
        yield Otel(spans, metric_readers[0], tracer_provider, meter_provider, metric_readers)
    finally:
        meter_provider.shutdown()
        tracer_provider.shutdown()


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def outcome(span: ReadableSpan) -> Any:
    return attributes(span).get("eventactors.command.outcome")
