"""Live metrics for Prometheus: what the stream, decide and score jobs are doing, on a
localhost port (``metrics.host`` / ``metrics.ports.<job>``, path ``/metrics``).

Per streaming query (from Spark's progress events): input and processing rate, batch duration,
rows and batches, and Kafka lag per topic (the newest offsets minus the batch's end offsets).
From finlake's own batch functions: rows quarantined and their reasons per table, decisions by
outcome, the decision latency histogram (the decision record's Kafka timestamp minus its
event's) and the model version each use case serves. Counters count since the process
started, as Prometheus expects; a batch that is retried after a failure is counted again.
"""
from __future__ import annotations

import json
import sys
import threading
from collections import Counter as Tally
from typing import Iterable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

from lakehouse.metrics import ProgressListener

INPUT_RATE = Gauge("finlake_query_input_rows_per_second", "Rows per second arriving at a streaming query", ["query"])
PROCESS_RATE = Gauge("finlake_query_processed_rows_per_second", "Rows per second a streaming query processed", ["query"])
BATCH_SECONDS = Gauge("finlake_query_last_batch_seconds", "Duration of a query's last micro-batch", ["query"])
BATCH_DURATION = Histogram("finlake_query_batch_seconds", "Micro-batch durations", ["query"],
                           buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320))
INPUT_ROWS = Counter("finlake_query_input_rows", "Rows a streaming query has read", ["query"])
BATCHES = Counter("finlake_query_batches", "Micro-batches a streaming query has completed", ["query"])
KAFKA_LAG = Gauge("finlake_kafka_lag_records", "Records in Kafka a query has not read yet (latest minus end offset)",
                  ["query", "topic"])
QUARANTINED = Counter("finlake_quarantined_rows", "Rows quarantined", ["table"])
REASONS = Counter("finlake_quarantine_reasons", "Reasons given to quarantined rows (a row may have several)",
                  ["table", "reason"])
DECISIONS = Counter("finlake_decisions", "Decisions landed, by outcome", ["use_case", "decision"])
DECISION_LATENCY = Histogram("finlake_decision_latency_seconds", "Kafka event to Kafka decision", ["use_case"],
                             buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300))
CHECKED = Counter("finlake_silver_rows_checked", "Rows a silver batch parsed and checked", ["table"])
QUARANTINE_SHARE = Gauge("finlake_quarantine_share", "Share of a table's checked rows quarantined in the last window "
                         "(pipeline.quarantine_window_s)", ["table"])
MODEL_VERSION = Gauge("finlake_model_version_serving", "Registered model version a job scores with", ["use_case", "model"])

_lock = threading.Lock()
_servers: dict[tuple[str, int], object] = {}
_attached: set[int] = set()


def serve(cfg, job: str) -> str | None:
    """Expose the metrics on ``metrics.ports.<job>`` (0: off); returns the URL, or None. A
    port in use leaves the job running without an endpoint, with one warning line."""
    host, port = str(cfg["metrics.host"]), int(cfg[f"metrics.ports.{job}"])
    if port == 0:
        return None
    with _lock:
        if (host, port) not in _servers:
            try:
                _servers[(host, port)] = start_http_server(port, addr=host, registry=REGISTRY)
            except OSError as exc:
                print(f"finlake: warning: metrics endpoint not started: {host}:{port}: {exc.strerror or exc}; "
                      f"set --conf metrics.ports.{job}=<free port>", file=sys.stderr)
                return None
    return f"http://{host}:{port}/metrics"


def kafka_lag(source) -> dict[str, int]:
    """Records behind per topic from one source's progress (latest minus end offset)."""
    try:
        latest, end = json.loads(source.latestOffset or "null"), json.loads(source.endOffset or "null")
    except (TypeError, ValueError):
        return {}
    if not isinstance(latest, dict) or not isinstance(end, dict):
        return {}
    lag = {}
    for topic, parts in latest.items():
        if isinstance(parts, dict) and isinstance(end.get(topic), dict):
            lag[topic] = sum(max(0, int(off) - int(end[topic].get(p, off))) for p, off in parts.items())
    return lag


def record_progress(p) -> None:
    """One query progress event -> the per-query metrics."""
    q = p.name or str(p.id)
    INPUT_RATE.labels(q).set(float(p.inputRowsPerSecond or 0.0))
    PROCESS_RATE.labels(q).set(float(p.processedRowsPerSecond or 0.0))
    seconds = float((p.durationMs or {}).get("triggerExecution", 0)) / 1000.0
    BATCH_SECONDS.labels(q).set(seconds)
    BATCH_DURATION.labels(q).observe(seconds)
    INPUT_ROWS.labels(q).inc(int(p.numInputRows or 0))
    BATCHES.labels(q).inc()
    for source in p.sources or []:
        for topic, behind in kafka_lag(source).items():
            KAFKA_LAG.labels(q, topic).set(behind)


class _Listener(ProgressListener):
    def onQueryProgress(self, event):
        record_progress(event.progress)


def attach(spark) -> None:
    """Feed every streaming query of ``spark`` into the metrics (once per session)."""
    with _lock:
        if id(spark) in _attached:
            return
        _attached.add(id(spark))
    spark.streams.addListener(_Listener())


def quarantined(table: str, rows: int, reasons: Iterable[str], checked: int | None = None) -> None:
    """``rows`` rows of ``table`` quarantined, with every reason they carry, out of ``checked``
    rows the batch parsed and checked."""
    if rows:
        QUARANTINED.labels(table).inc(rows)
    for reason, n in Tally(reasons).items():
        REASONS.labels(table, reason).inc(n)
    if checked is not None:
        CHECKED.labels(table).inc(checked)


def checked_so_far() -> dict[str, dict]:
    """Per silver table since the process started, from the counters above: {table: {"checked",
    "quarantined", "reasons": {reason: n}}} (read by the continuous job's quarantine watch)."""
    samples = {m.name: [s for s in m.samples if s.name.endswith("_total")] for m in REGISTRY.collect()}
    totals = lambda counter: samples.get(counter.describe()[0].name, [])  # noqa: E731
    out = {s.labels["table"]: {"checked": int(s.value), "quarantined": 0, "reasons": {}} for s in totals(CHECKED)}
    for s in totals(QUARANTINED):
        if s.labels["table"] in out:
            out[s.labels["table"]]["quarantined"] = int(s.value)
    for s in totals(REASONS):
        if s.labels["table"] in out:
            out[s.labels["table"]]["reasons"][s.labels["reason"]] = int(s.value)
    return out


def decisions(use_case: str, outcomes: Iterable[str], latencies_ms: Iterable[float]) -> None:
    for outcome, n in Tally(outcomes).items():
        DECISIONS.labels(use_case, str(outcome)).inc(n)
    hist = DECISION_LATENCY.labels(use_case)
    for ms in latencies_ms:
        if ms is not None:
            hist.observe(float(ms) / 1000.0)


def serving(use_case: str, model: str, version) -> None:
    try:
        MODEL_VERSION.labels(use_case, model).set(float(version))
    except (TypeError, ValueError):
        pass
