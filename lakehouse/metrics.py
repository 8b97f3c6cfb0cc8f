"""Stream metrics: a StreamingQueryListener that collects every query's progress, written to
``ops.stream_metrics`` by the driver loop (never from the listener thread itself)."""
from __future__ import annotations

import threading
from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQueryListener

from lakehouse.catalog import TableSpec
from lakehouse.schemas.tables import STREAM_METRICS


class ProgressCollector(StreamingQueryListener):
    def __init__(self):
        self._rows: list[tuple] = []
        self._lock = threading.Lock()

    def onQueryStarted(self, event):
        pass

    def onQueryProgress(self, event):
        p = event.progress
        dropped = sum(int(getattr(op, "numRowsDroppedByWatermark", 0) or 0) for op in (p.stateOperators or []))
        durations = {str(k): float(v) for k, v in (p.durationMs or {}).items()}
        row = (p.name or str(p.id), str(p.runId), int(p.batchId),
               datetime.fromisoformat(p.timestamp.replace("Z", "+00:00")).replace(tzinfo=None),
               int(p.numInputRows), float(p.inputRowsPerSecond or 0.0), float(p.processedRowsPerSecond or 0.0),
               int(durations.get("triggerExecution", 0)), dropped, durations)
        with self._lock:
            self._rows.append(row)

    def onQueryIdle(self, event):
        pass

    def onQueryTerminated(self, event):
        pass

    def snapshot(self) -> list[tuple]:
        """The progress rows collected and not yet flushed (in STREAM_METRICS column order)."""
        with self._lock:
            return list(self._rows)

    def flush(self, spark: SparkSession, spec: TableSpec) -> int:
        """Append what was collected to ``ops.stream_metrics``; returns the rows written."""
        with self._lock:
            rows, self._rows = self._rows, []
        if rows:
            spark.createDataFrame(rows, STREAM_METRICS).write.format("delta").mode("append").save(spec.location)
        return len(rows)
