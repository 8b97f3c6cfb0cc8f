"""Stream metrics: a StreamingQueryListener that collects every query's progress, written to
``ops.stream_metrics`` by the driver loop (never from the listener thread itself)."""
from __future__ import annotations

import threading
from collections import namedtuple
from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQueryListener

from lakehouse.catalog import TableSpec
from lakehouse.schemas.tables import STREAM_METRICS

# One query's progress after one batch, named as ops.stream_metrics' columns (and written there
# as a row): query_name, run_id, batch_id, timestamp, num_input_rows, input_rows_per_second,
# processed_rows_per_second, batch_duration_ms, rows_dropped_by_watermark, metrics (the phases, ms).
QueryProgress = namedtuple("QueryProgress", STREAM_METRICS.fieldNames())


class ProgressCollector(StreamingQueryListener):
    def __init__(self):
        self._rows: list[QueryProgress] = []
        self._lock = threading.Lock()

    def onQueryStarted(self, event):
        pass

    def onQueryProgress(self, event):
        p = event.progress
        dropped = sum(int(getattr(op, "numRowsDroppedByWatermark", 0) or 0) for op in (p.stateOperators or []))
        durations = {str(k): float(v) for k, v in (p.durationMs or {}).items()}
        row = QueryProgress(p.name or str(p.id), str(p.runId), int(p.batchId),
                            datetime.fromisoformat(p.timestamp.replace("Z", "+00:00")).replace(tzinfo=None),
                            int(p.numInputRows), float(p.inputRowsPerSecond or 0.0), float(p.processedRowsPerSecond or 0.0),
                            int(durations.get("triggerExecution", 0)), dropped, durations)
        with self._lock:
            self._rows.append(row)

    def onQueryIdle(self, event):
        pass

    def onQueryTerminated(self, event):
        pass

    def snapshot(self) -> list[QueryProgress]:
        """The progress records collected and not yet flushed."""
        with self._lock:
            return list(self._rows)

    def flush(self, spark: SparkSession, spec: TableSpec) -> int:
        """Append what was collected to ``ops.stream_metrics``; returns the rows written."""
        with self._lock:
            rows, self._rows = self._rows, []
        if rows:
            spark.createDataFrame(rows, STREAM_METRICS).write.format("delta").mode("append").save(spec.location)
        return len(rows)


def seconds_behind(samples: list[tuple[float, int]], landed: int, now: float) -> float:
    """How far behind its source a layer is that has landed ``landed`` of the source's records:
    ``now`` minus the time at which the source held exactly that many, read off ``samples``
    (the source's (time, records so far), in order; linear between two). 0 when the layer holds
    what the last sample counted. Pure."""
    if not samples or landed >= samples[-1][1]:
        return 0.0
    t_prev, k_prev = samples[0]
    if landed < k_prev:
        return max(0.0, now - t_prev)
    for t, k in samples[1:]:
        if k > landed:
            at = t_prev + (landed - k_prev) / (k - k_prev) * (t - t_prev)
            return max(0.0, now - at)
        t_prev, k_prev = t, k
    return 0.0
