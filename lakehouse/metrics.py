"""Stream metrics: a StreamingQueryListener that collects every query's progress, written to
``ops.stream_metrics`` by the driver loop (never from the listener thread itself)."""
from __future__ import annotations

import json
import os
import platform
import threading
import time
from collections import deque, namedtuple
from types import SimpleNamespace
from datetime import datetime
from pathlib import Path

import numpy as np
import psutil

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQueryListener
from pyspark.sql.streaming.listener import JStreamingQueryListener

from lakehouse.catalog import TableSpec
from lakehouse.kafka.clients import end_offsets
from lakehouse.procs import ProcessSampler, bootstrap_pid
from lakehouse.schemas.tables import STREAM_METRICS

# One query's progress after one batch, named as ops.stream_metrics' columns (and written there
# as a row): query_name, run_id, batch_id, timestamp, num_input_rows, input_rows_per_second,
# processed_rows_per_second, batch_duration_ms, rows_dropped_by_watermark, metrics (the phases, ms).
QueryProgress = namedtuple("QueryProgress", STREAM_METRICS.fieldNames())


def progress_from_json(text: str) -> SimpleNamespace:
    """A query progress from its JSON, with the attributes pyspark's ``StreamingQueryProgress``
    gives (``name``, ``batchId``, ``durationMs``, ``sources[].endOffset`` as JSON text, ...);
    rates come to one decimal, as Spark's JSON writes them."""
    j = json.loads(text)

    def offset(v):
        return v if v is None or isinstance(v, str) else json.dumps(v)

    return SimpleNamespace(
        id=j.get("id"), runId=j.get("runId"), name=j.get("name"), timestamp=j.get("timestamp"), batchId=j.get("batchId"),
        batchDuration=j.get("batchDuration"), numInputRows=j.get("numInputRows", 0),
        inputRowsPerSecond=j.get("inputRowsPerSecond"), processedRowsPerSecond=j.get("processedRowsPerSecond"),
        durationMs=dict(j.get("durationMs") or {}), eventTime=dict(j.get("eventTime") or {}),
        stateOperators=[SimpleNamespace(**op) for op in j.get("stateOperators") or []],
        sources=[SimpleNamespace(**dict(src, startOffset=offset(src.get("startOffset")), endOffset=offset(src.get("endOffset")),
                                        latestOffset=offset(src.get("latestOffset"))))
                 for src in j.get("sources") or []],
        sink=SimpleNamespace(**(j.get("sink") or {})))


class _ProgressAsJson(JStreamingQueryListener):
    """The JVM's side of a ``ProgressListener``: each progress crosses as one JSON text."""

    def onQueryStarted(self, jevent) -> None:
        pass

    def onQueryProgress(self, jevent) -> None:
        self.pylistener.onQueryProgress(SimpleNamespace(progress=progress_from_json(jevent.progress().json())))

    def onQueryIdle(self, jevent) -> None:
        pass

    def onQueryTerminated(self, jevent) -> None:
        pass


class ProgressListener(StreamingQueryListener):
    """A streaming listener for progress events only, each read from the progress's JSON in one
    call to the JVM. pyspark's own conversion makes a JVM call for every field, map entry,
    source and state operator of every event (and converts the start, idle and termination
    events finlake ignores), on the listener bus thread that every query's events share."""

    @property
    def _jlistener(self):
        from pyspark import SparkContext

        if not hasattr(self, "_jlistenerobj"):
            self._jlistenerobj = SparkContext._jvm.PythonStreamingQueryListenerWrapper(_ProgressAsJson(self))
        return self._jlistenerobj

    def onQueryStarted(self, event):
        pass

    def onQueryIdle(self, event):
        pass

    def onQueryTerminated(self, event):
        pass


class ProgressCollector(ProgressListener):
    def __init__(self, keep: int = 100_000):
        self._rows: list[QueryProgress] = []
        self._seen: deque[QueryProgress] = deque(maxlen=keep)
        self._lock = threading.Lock()

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
            self._seen.append(row)

    def snapshot(self) -> list[QueryProgress]:
        """The progress records collected and not yet flushed."""
        with self._lock:
            return list(self._rows)

    def history(self) -> list[QueryProgress]:
        """Every record collected, flushed ones included (the last ``keep``)."""
        with self._lock:
            return list(self._seen)

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


class Freshness:
    """How far a layer is behind Kafka, looked at now and then: each ``look`` samples what the
    topics hold since ``ends`` (their end offsets at the start) and, from the layer's landed
    count, how many seconds behind them it is (``seconds_behind``)."""

    def __init__(self, cfg, topics: list[str], ends: dict[str, dict[int, int]]):
        self.cfg, self.topics = cfg, topics
        self.start_total = sum(sum(p.values()) for p in ends.values())
        self.samples, self.behind = [(time.monotonic(), 0)], []

    def look(self, landed: int) -> tuple[int, float]:
        """(records Kafka holds since the start, seconds the layer is behind) now."""
        now = time.monotonic()
        self.samples.append((now, sum(sum(p.values()) for p in end_offsets(self.cfg, self.topics).values()) - self.start_total))
        self.behind.append(seconds_behind(self.samples, landed, now))
        return self.samples[-1][1], self.behind[-1]

    def summary(self) -> dict:
        """The most and the last seconds behind seen (None before the first look)."""
        return {"max": round(max(self.behind), 1) if self.behind else None, "last": round(self.behind[-1], 1) if self.behind else None}


def commit_times(location: str) -> dict[str, float]:
    """File name -> commit time (epoch seconds) of the Delta version that added it."""
    out = {}
    for log in sorted(Path(location, "_delta_log").glob("*.json")):
        ts, adds = None, []
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            if "commitInfo" in entry:
                ts = entry["commitInfo"]["timestamp"] / 1000.0
            if "add" in entry:
                adds.append(entry["add"]["path"].split("/")[-1])
        for name in adds:
            out[name] = ts
    return out


def ingest_batch_summary(history: list[dict]) -> dict:
    """An ingest query's batches (``IngestBatch.history``) in a few figures: batches, rows, mean
    and max batch milliseconds, and per stream the mean milliseconds of each phase."""
    if not history:
        return {"batches": 0}
    phases: dict = {}
    for b in history:
        for stream, s in b["streams"].items():
            for k, v in {"bronze_ms": s.get("bronze_ms"), "silver_stage_ms": s.get("silver_stage_ms"),
                         **{f"{p}_ms": ms for p, ms in (s.get("silver_phases_ms") or {}).items()}}.items():
                if v is not None:
                    phases.setdefault(stream, {}).setdefault(k, []).append(v)
    totals = [b["total_ms"] for b in history if "total_ms" in b]
    return {"batches": len(history), "rows": sum(b["rows"] for b in history),
            "mean_ms": round(sum(totals) / len(totals)) if totals else None, "max_ms": max(totals, default=None),
            "per_stream_mean_ms": {s: {k: round(sum(v) / len(v)) for k, v in ph.items()} for s, ph in phases.items()}}


def latency_seconds(spark: SparkSession, location: str, where=None) -> np.ndarray:
    """Kafka -> committed latency of a Delta table's rows (``where``: which), in seconds: each
    row's Kafka timestamp against the commit time of the version that added its file."""
    from pyspark.sql import functions as F

    commits = commit_times(location)
    df = spark.read.format("delta").load(location)
    rows = (df.where(where) if where is not None else df).select(
        F.col("kafka_timestamp").cast("double").alias("k"), F.col("_metadata.file_name").alias("f")).collect()
    return np.array([commits[r.f] - r.k for r in rows if r.f in commits], dtype=float)


def latency_stats(spark: SparkSession, location: str, where=None) -> dict:
    """Kafka -> committed latency of a Delta table's rows (``latency_seconds``): median, p99, max."""
    return latency_summary(latency_seconds(spark, location, where))


def latency_summary(delays: np.ndarray) -> dict:
    """Rows, median, p99 and max (ms) of latencies given in seconds."""
    if len(delays) == 0:
        return {"rows": 0}
    return {"rows": int(len(delays)), "median_ms": round(float(np.median(delays)) * 1000, 1),
            "p99_ms": round(float(np.percentile(delays, 99)) * 1000, 1), "max_ms": round(float(delays.max()) * 1000, 1)}


def machine() -> dict:
    """The machine's figures reported beside every measurement."""
    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "platform": platform.platform()}


def process_sampler(bootstrap_servers: str) -> ProcessSampler:
    """A started sampler of this process tree (driver, Spark's JVM, Python workers) and the broker."""
    roots = {"finlake": os.getpid()}
    broker = bootstrap_pid(bootstrap_servers)
    if broker is not None and broker != os.getpid():
        roots["kafka"] = broker
    sampler = ProcessSampler(roots)
    sampler.start()
    return sampler


class sampled:
    """``with sampled(cfg) as usage:`` fills ``usage`` with the block's CPU and peak memory."""

    def __init__(self, cfg):
        self.cfg, self.usage = cfg, {}

    def __enter__(self) -> dict:
        self.sampler = process_sampler(self.cfg["kafka.bootstrap_servers"])
        return self.usage

    def __exit__(self, *exc):
        self.usage.update(self.sampler.stop())
        return False
