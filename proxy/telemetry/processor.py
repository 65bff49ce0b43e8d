"""Turn batches of request records into metrics, spans, store rows and OTLP exports.

Runs on the telemetry worker's writer thread, which owns the store's connection. It is
a plain class so tests can drive it without a process around it.

One record must never cost another its trace: each is analysed within its budget
(`proxy.telemetry.budget`), a record that fails to build is skipped alone, and a batch
the store cannot write is written again one trace at a time, so only the trace that
cannot be stored is lost (and logged).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from proxy import __version__
from proxy.pricing import cost_usd
from proxy.telemetry.analysis import analyze_record
from proxy.telemetry.budget import STREAM
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
    store_errors: int = 0  # writes that failed (a batch, then each trace of it alone)
    store_lost: int = 0  # traces not stored: even alone, the store refused them


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
        parts: list[StoreBatch] = []
        for record in records:
            self.stats.sampled += 1
            try:
                part = self._trace_one(record)
            except Exception:  # one odd record must not cost the rest of the batch
                log.exception("telemetry: could not trace request %s", record.request_id)
                continue
            if part is not None:
                parts.append(part)
        self._write(parts)

    def ingest(self, batch: StoreBatch) -> None:
        """Spans an agent sent over OTLP: stored beside Plano's own, in their traces."""
        self.stats.ingested_spans += len(batch.spans)
        self._write(_by_trace(batch))

    def _trace_one(self, record: TelemetryRecord) -> StoreBatch | None:
        """The record's rows for the store (None without a store); its spans go to the
        exporter here."""
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
        cuts = set(analysis.cuts)
        if record.response_truncated:  # the gateway kept only the head of the stream
            cuts.add(STREAM)
        self.metrics.observe_truncated(sorted(cuts))
        self.metrics.observe_replaced(Counter(record.escaped_fields))
        if self.store is None and self.exporter is None:
            return None
        spans = build_spans(record, analysis, self.resource, self.scope)
        if self.exporter is not None:
            for span in spans:
                self.exporter.on_end(span)
        if self.store is None:
            return None
        span_rows, event_rows = rows_from_spans(spans)
        return StoreBatch(
            requests=[request_row(record, analysis)],
            spans=span_rows,
            events=event_rows,
            signals=signal_rows(record, analysis),
        )

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

    def _write(self, parts: list[StoreBatch]) -> None:
        """Write the traces in one transaction; if that fails, each trace in its own, so
        a trace the store refuses (a row without its key, a value nothing could bind)
        takes only itself down."""
        parts = [p for p in parts if p.requests or p.spans or p.events]
        if self.store is None or not parts:
            return
        try:
            self._write_one(_merged(parts))
            return
        except Exception as exc:  # a full disk or a locked file: keep serving metrics and OTLP
            self.stats.store_errors += 1
            if len(parts) == 1:
                self.stats.store_lost += 1
                log.exception("telemetry: could not write the trace %s", _trace_of(parts[0]))
                return
            log.warning(
                "telemetry: could not write %d traces at once (%s: %s); writing each alone",
                len(parts),
                type(exc).__name__,
                exc,
            )
        lost = 0
        for part in parts:
            try:
                self._write_one(part)
            except Exception:
                self.stats.store_errors += 1
                lost += 1
                if lost == 1:  # the first one's traceback; a full disk would repeat it
                    log.exception("telemetry: could not write the trace %s", _trace_of(part))
        self.stats.store_lost += lost
        if lost > 1:
            log.error("telemetry: could not write %d of %d traces", lost, len(parts))

    def _write_one(self, batch: StoreBatch) -> None:
        assert self.store is not None
        replaced = self.store.write(batch)
        self.stats.stored += len(batch.requests)
        self.metrics.observe_replaced(replaced)


def _merged(parts: list[StoreBatch]) -> StoreBatch:
    if len(parts) == 1:
        return parts[0]
    batch = StoreBatch()
    for part in parts:
        batch.requests.extend(part.requests)
        batch.spans.extend(part.spans)
        batch.events.extend(part.events)
        batch.signals.extend(part.signals)
    return batch


def _by_trace(batch: StoreBatch) -> list[StoreBatch]:
    """A batch of OTLP spans as one batch per trace, for writing alone if need be."""
    parts: dict[object, StoreBatch] = {}
    for kind in ("requests", "spans", "events", "signals"):
        for row in getattr(batch, kind):
            part = parts.setdefault(getattr(row, "trace_id", None), StoreBatch())
            getattr(part, kind).append(row)
    return list(parts.values())


def _trace_of(batch: StoreBatch) -> str:
    rows = batch.requests or batch.spans or batch.events or batch.signals
    return str(rows[0].trace_id) if rows else "?"
