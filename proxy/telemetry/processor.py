"""Turn batches of request records into metrics, spans, store rows and OTLP exports.

Runs on the telemetry worker's writer thread, which owns the store's connection. It is
a plain class so tests can drive it without a process around it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from proxy import __version__
from proxy.pricing import cost_usd
from proxy.telemetry.analysis import analyze_record
from proxy.telemetry.metrics import GatewayMetrics
from proxy.telemetry.record import TelemetryRecord
from proxy.telemetry.settings import WorkerSettings
from proxy.telemetry.span_rows import request_row, rows_from_spans, signal_rows
from proxy.telemetry.spans import build_spans
from proxy.telemetry.store import StoreBatch, TraceStore

log = logging.getLogger("plano.telemetry")


@dataclass(slots=True)
class ProcessorStats:
    records: int = 0
    sampled: int = 0
    stored: int = 0
    ingested_spans: int = 0
    dropped: int = 0  # not traced: the request path or the worker's backlog was full
    store_errors: int = 0


class TelemetryProcessor:
    def __init__(
        self,
        settings: WorkerSettings,
        metrics: GatewayMetrics,
        store: TraceStore | None = None,
        exporter: SpanProcessor | None = None,
    ):
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.exporter = exporter
        self.stats = ProcessorStats()
        self.resource = Resource.create(
            {"service.name": settings.service_name, "service.version": __version__}
        )
        self.scope = InstrumentationScope("plano", __version__)

    def process(self, records: list[TelemetryRecord], dropped: int = 0) -> None:
        """Both stages on one thread (the worker runs them on two)."""
        self.trace(self.observe(records, dropped))

    def observe(self, records: list[TelemetryRecord], dropped: int = 0) -> list[TelemetryRecord]:
        """The metrics of every record, at once (they are cheap, and a scrape should not
        wait for traces); returns the sampled records, whose traces are still to build."""
        if dropped:
            self.drop(dropped)
        sampled: list[TelemetryRecord] = []
        for record in records:
            self.stats.records += 1
            try:
                self.metrics.observe(record, cost_usd=self._cost(record))
            except Exception:  # one odd record must not cost the rest of the batch
                log.exception("telemetry: could not count request %s", record.request_id)
            if record.sampled:
                sampled.append(record)
        return sampled

    def drop(self, count: int) -> None:
        """Records whose trace will never be built: dropped by the request path, or by
        the worker when its backlog is full."""
        self.stats.dropped += count
        self.metrics.observe_dropped(count)

    def trace(self, records: list[TelemetryRecord]) -> None:
        """Signals, spans, the store and OTLP for sampled records."""
        batch = StoreBatch()
        for record in records:
            self.stats.sampled += 1
            try:
                self._trace_one(record, batch)
            except Exception:  # one odd record must not cost the rest of the batch
                log.exception("telemetry: could not trace request %s", record.request_id)
        self._write(batch)

    def ingest(self, batch: StoreBatch) -> None:
        """Spans an agent sent over OTLP: stored beside Plano's own, in their traces."""
        self.stats.ingested_spans += len(batch.spans)
        self._write(batch)

    def _trace_one(self, record: TelemetryRecord, batch: StoreBatch) -> None:
        settings = self.settings
        analysis = analyze_record(
            record,
            signals=settings.signals,
            capture=settings.capture_messages,
            price_overrides=settings.prices,
        )
        report = analysis.report
        if report is not None:
            self.metrics.observe_signals(report.quality, [s.type for s in report.signals])
        if self.store is None and self.exporter is None:
            return
        spans = build_spans(record, analysis, self.resource, self.scope)
        if self.exporter is not None:
            for span in spans:
                self.exporter.on_end(span)
        if self.store is not None:
            span_rows, event_rows = rows_from_spans(spans)
            batch.requests.append(request_row(record, analysis))
            batch.spans.extend(span_rows)
            batch.events.extend(event_rows)
            batch.signals.extend(signal_rows(record, analysis))

    def _cost(self, record: TelemetryRecord) -> float | None:
        if record.model is None or record.input_tokens is None or record.output_tokens is None:
            return None
        return cost_usd(
            record.model,
            record.input_tokens,
            record.output_tokens,
            record.cached_input_tokens or 0,
            self.settings.prices,
        )

    def _write(self, batch: StoreBatch) -> None:
        if self.store is None or not (batch.requests or batch.spans or batch.events):
            return
        try:
            self.store.write(batch)
            self.stats.stored += len(batch.requests)
        except Exception:  # a full disk or a locked file: keep serving metrics and OTLP
            self.stats.store_errors += 1
            log.exception("telemetry: could not write %d traces", len(batch.requests))
