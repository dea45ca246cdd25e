"""Prometheus view of the writer, read at scrape time (nothing to update on the hot path)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ctid.store.writer import StoreWriter


class StoreCollector:
    """Register on the daemon's registry: ``registry.register(StoreCollector(writer))``."""

    def __init__(self, writer: StoreWriter) -> None:
        self._writer = writer

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        w = self._writer
        yield GaugeMetricFamily(
            "ctid_store_up", "1 while the last write to the database succeeded", w.healthy
        )
        yield GaugeMetricFamily(
            "ctid_store_backlog_rows",
            "Rows accepted but not yet in the database (memory and spool file)",
            w.backlog,
        )
        yield CounterMetricFamily(
            "ctid_store_rows_written", "Rows written to the database", w.flushed
        )
        yield CounterMetricFamily(
            "ctid_store_rows_dropped",
            "Rows lost: beyond the memory and spool bounds, or rejected by the database",
            w.dropped,
        )
        yield CounterMetricFamily(
            "ctid_store_rows_rejected", "Rows the database refused as invalid", w.rejected
        )
