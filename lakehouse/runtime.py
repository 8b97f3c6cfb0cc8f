"""One owner for finlake's streaming queries.

A ``StreamingRun`` is built once per process from the session, the config and one catalog. It
starts every query finlake runs (the lakehouse's ingest and gold queries here; the scorers and
decision paths hand it their own start functions), keeps each query's start function so that a
query that failed or stopped is restarted from its checkpoint, stops them all side by side, and
records their progress as named ``QueryProgress`` records (flushed to ``ops.stream_metrics``).
Jobs, the demo, notebooks and benchmarks all run their queries through one.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from lakehouse import streaming
from lakehouse.catalog import Catalog
from lakehouse.config import Config
from lakehouse.failures import QueryFailed, root_cause
from lakehouse.metrics import ProgressCollector, QueryProgress

Starter = Callable[[], StreamingQuery]


def failure(q: StreamingQuery) -> str:
    """``query <name> failed: <root cause>`` for a failed or stopped query."""
    return f"query {q.name} failed: {root_cause(q.exception() or 'it stopped')}"


def lakehouse_starters(spark: SparkSession, cfg: Config, streams, gold_tables, processing_time: str | None = None,
                       available_now: bool = False, bronze_from: dict[str, str] | None = None,
                       catalog: Catalog | None = None, keep: dict | None = None) -> list[Starter]:
    """The start functions of the lakehouse's queries for ``streams`` and ``gold_tables``: one
    ingest query (Kafka -> bronze and silver), a bronze query and an ingest query with
    ``pipeline.ingest: bronze_apart``, or a bronze and a silver query per stream with
    ``pipeline.ingest: per_layer``, then a query per gold table. ``bronze_from``: a new
    checkpoint's starting offsets per stream (default earliest). ``keep``: the ingest queries'
    batch functions (``IngestBatch``, with each batch's time per stream and phase) by query name."""
    kw = {"available_now": available_now, "processing_time": processing_time}

    def ingest(layers):
        query, fn = streaming.start_ingest(spark, cfg, streams, starting_offsets=bronze_from, layers=layers, **kw)
        if keep is not None:
            keep[query.name] = fn
        return query

    mode = streaming.ingest_mode(cfg)
    if mode == "one_query":
        out = [lambda: ingest(("bronze", "silver"))]
    elif mode == "bronze_apart":
        out = [(lambda layer=layer: ingest((layer,))) for layer in ("bronze", "silver")]
    else:
        out = [(lambda s=s: streaming.start_bronze(spark, cfg, f"bronze.{s}", starting_offsets=(bronze_from or {}).get(s, "earliest"), **kw))
               for s in streams]
        out += [(lambda s=s: streaming.start_silver(spark, cfg, s, **kw)) for s in streams]
    return out + [(lambda t=t: streaming.start_gold(spark, cfg, t, **kw)) for t in gold_tables]


class StreamingRun:
    """Every streaming query of one process: start, supervise (restart from the checkpoint at
    most ``pipeline.max_query_restarts`` times in all), wait, stop, and named progress."""

    def __init__(self, spark: SparkSession, cfg: Config, label: str, catalog: Catalog | None = None):
        self.spark, self.cfg, self.label = spark, cfg, label
        self.catalog = catalog or Catalog(cfg)
        self.limit = int(cfg["pipeline.max_query_restarts"])
        self.restarts = 0
        self._running: list[list] = []   # [start function, query]
        self._collector = ProgressCollector()
        self._stopped = False
        self.batch_functions: dict = {}   # ingest query name -> its IngestBatch (``history``)
        spark.streams.addListener(self._collector)

    # -- starting -----------------------------------------------------------------------------
    def start(self, starter: Starter) -> StreamingQuery:
        """Start one query; ``starter`` is also how it is restarted."""
        q = starter()
        self._running.append([starter, q])
        return q

    def start_lakehouse(self, streams, gold_tables, processing_time: str | None = None, available_now: bool = False,
                        bronze_from: dict[str, str] | None = None) -> list[StreamingQuery]:
        """Start the lakehouse's queries (``lakehouse_starters``)."""
        return [self.start(s) for s in lakehouse_starters(self.spark, self.cfg, streams, gold_tables, processing_time,
                                                          available_now, bronze_from, self.catalog, self.batch_functions)]

    @property
    def queries(self) -> list[StreamingQuery]:
        return [q for _, q in self._running]

    # -- watching -----------------------------------------------------------------------------
    def failed(self) -> StreamingQuery | None:
        """The first query that failed, or None."""
        return next((q for q in self.queries if q.exception() is not None), None)

    def check(self) -> int:
        """Restart each query that failed or stopped, from its checkpoint (nothing lost or
        repeated); past the limit, stop every query and raise ``QueryFailed``. Returns the
        restarts so far."""
        for entry in self._running:
            start, q = entry
            if q.isActive and q.exception() is None:
                continue
            if self.restarts >= self.limit:
                self.stop()
                raise QueryFailed(failure(q))
            # A restart also rides out what a broker restart can do to Spark's Kafka source
            # (a null offset in its lag metrics, a lost connection).
            self.restarts += 1
            print(f"{self.label}: query {q.name} failed ({root_cause(q.exception() or 'it stopped')}); "
                  f"restarting it ({self.restarts} of pipeline.max_query_restarts={self.limit})", flush=True)
            entry[1] = start()
        return self.restarts

    def supervise(self, until: Callable[[], bool], tick: Callable[[], None] | None = None, every_s: float = 2.0) -> int:
        """Keep the queries going until ``until()`` is true, flushing their progress and calling
        ``tick()`` each round; then stop them all. Returns the restarts."""
        try:
            while not until():
                time.sleep(every_s)
                self.flush()
                if tick:
                    tick()
                self.check()
        finally:
            self.stop()
        return self.restarts

    def await_all(self) -> None:
        """Wait for queries that end by themselves (availableNow); the first failure stops the
        others and raises ``QueryFailed``."""
        for q in self.queries:
            try:
                q.awaitTermination()
            except Exception:  # noqa: BLE001 - its exception is read just below
                pass
            if q.exception():
                self.stop()
                raise QueryFailed(failure(q))

    def wait_until_idle(self, timeout_s: float, checks: int = 4, every_s: float = 2.0) -> None:
        """Wait until every query has been idle (no data available, no trigger running) for
        ``checks`` looks in a row, or ``timeout_s`` passes; a failed query stops the run and
        raises ``QueryFailed``."""
        deadline, idle = time.monotonic() + timeout_s, 0
        while time.monotonic() < deadline and idle < checks:
            self.raise_if_failed()
            quiet = all(not q.status["isDataAvailable"] and not q.status["isTriggerActive"] for q in self.queries)
            idle = idle + 1 if quiet else 0
            time.sleep(every_s)
        self.raise_if_failed()

    def raise_if_failed(self) -> None:
        """Stop the run and raise ``QueryFailed`` if a query failed."""
        failed = self.failed()
        if failed is not None:
            self.stop()
            raise QueryFailed(failure(failed))

    # -- progress -----------------------------------------------------------------------------
    def progress(self) -> list[QueryProgress]:
        """Every progress record of this run's queries, flushed ones included (the last 100,000)."""
        return self._collector.history()

    def flush(self) -> int:
        """Append the progress records not yet written to ``ops.stream_metrics``."""
        return self._collector.flush(self.spark, self.catalog.spec("ops.stream_metrics"))

    # -- stopping -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every query side by side (each stop waits for its running batch, so one after
        another would add those waits up), then write the last progress records. Idempotent."""
        threads = [threading.Thread(target=_stop_quietly, args=(q,), daemon=True) for q in self.queries]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if not self._stopped:
            self._stopped = True
            time.sleep(0.5)   # the listener delivers the last progress events
            self.flush()
            self.spark.streams.removeListener(self._collector)

    def __enter__(self) -> "StreamingRun":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _stop_quietly(q: StreamingQuery) -> None:
    try:
        q.stop()
    except Exception:  # noqa: BLE001 - stopped either way; its error was reported while running
        pass
