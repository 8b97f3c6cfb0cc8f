"""The streaming medallion pipeline: Kafka -> bronze -> silver (+ quarantine, ops.dq_results)
-> gold, exactly once.

Bronze, silver and gold run in ``foreachBatch`` functions whose Delta writes are idempotent
(``lakehouse.commits``: each commit carries its writer's id, kept in the query's checkpoint,
and the batch id; a replayed batch skips what committed). Within a batch, quarantine and
data-quality rows are written before silver, so a batch replayed after a crash either finds
silver committed (and all of it skipped) or recomputes the same rows.
"""
from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyspark import SparkContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.catalog import Catalog, TableSpec
from lakehouse.commits import app_id, idempotent_append
from lakehouse.config import Config, ConfigError
from lakehouse.gold import RISK_HISTORY_MS, declared_features, declared_spec, entity_history, risk_asof
from lakehouse.quality import min_amount as quality_min_amount
from lakehouse.quality import prepare as prepare_suite
from lakehouse.quality import validate
from lakehouse.risk import RiskSnapshots
from lakehouse.schemas.events import EVENT_TIME_FIELD, SILVER_FIELDS
from lakehouse.schemas.tables import DQ_RESULTS
from lakehouse.schemas.expectations import ALL_SUITES, DEFAULT_MIN_AMOUNT, rule_name
from lakehouse import observe
from lakehouse.topology import GOLD_VIEWS, STREAMS, stream_table
from lakehouse.silver import (PARSERS, add_rule_failures, classify_copies, content_hash, near_in_time, parse_bronze,
                              to_quarantine, to_silver)



# Structural reasons counted per batch into ops.dq_results (besides every expectation).
STRUCTURAL = ("malformed_json", "late_event", "invalid_utf8", "payload_too_large", "event_time_out_of_range")


class PipelineQualityError(RuntimeError):
    """A batch failed validation beyond the configured bound and the policy is to stop."""


@dataclass(frozen=True)
class Settings:
    allowed_lateness_s: float
    max_clock_skew_s: float
    max_failure_rate: float
    min_rows: int
    on_excess: str
    trigger_interval: str
    max_offsets_per_trigger: int
    max_payload_bytes: int
    max_field_chars: int
    parser: str = "jvm"
    min_amount: float = DEFAULT_MIN_AMOUNT
    dedup_horizon_s: float = 0.0

    @classmethod
    def from_config(cls, cfg: Config) -> "Settings":
        policy = str(cfg["pipeline.on_excess_failures"])
        if policy not in ("quarantine", "fail"):
            raise ConfigError(f"pipeline.on_excess_failures must be 'quarantine' or 'fail', got '{policy}'")
        rate = float(cfg["pipeline.max_failure_rate"])
        if not 0 <= rate <= 1:
            raise ConfigError(f"pipeline.max_failure_rate must be between 0 and 1, got {rate}")
        parser = str(cfg["pipeline.parser"])
        if parser not in PARSERS:
            raise ConfigError(f"pipeline.parser must be one of {', '.join(PARSERS)}, got '{parser}'")
        horizon = cfg.get("pipeline.dedup_horizon_s") or 0
        try:
            horizon = float(horizon)
        except (TypeError, ValueError):
            horizon = -1.0
        if horizon < 0:
            raise ConfigError(f"pipeline.dedup_horizon_s must be a number of seconds >= 0 (0: all of silver), got '{cfg.get('pipeline.dedup_horizon_s')}'")
        return cls(float(cfg["pipeline.allowed_lateness_s"]), float(cfg["pipeline.max_clock_skew_s"]), rate,
                   int(cfg["pipeline.min_rows_for_failure_rate"]), policy, str(cfg["pipeline.trigger_interval"]),
                   int(cfg["pipeline.max_offsets_per_trigger"]), int(cfg["pipeline.max_payload_bytes"]),
                   int(cfg["pipeline.max_field_chars"]), parser, quality_min_amount(cfg), horizon)


def _dq_rows(spark: SparkSession, table: str, batch_id: int, suite: str, results: list[dict]) -> DataFrame:
    return dq_frame(spark, batch_id, [(table, suite, results)])


def dq_frame(spark: SparkSession, batch_id: int, records: list[tuple[str, str, list[dict]]]) -> DataFrame:
    """``ops.dq_results`` rows of one batch: (table, suite, results) records, one DataFrame."""
    rows = [(table, suite, r["expectation"], "true" if r["success"] else "false", r.get("unexpected_count"), r.get("element_count"),
             {k: str(v) for k, v in (r.get("details") or {}).items()}) for table, suite, results in records for r in results]
    df = spark.createDataFrame(rows, "table string, suite string, expectation string, success string, unexpected_count long, "
                                     "element_count long, details map<string,string>")
    return df.select(F.current_timestamp().alias("run_time"), "table", F.lit(batch_id).cast("long").alias("batch_id"),
                     "suite", "expectation", "success", "unexpected_count", "element_count", "details"
                     ).select(*[F.col(f.name).cast(f.dataType) for f in DQ_RESULTS.fields])


@dataclass
class StagedSilver:
    """A silver batch with quarantine written and its data-quality records computed; ``finish``
    writes silver (after the caller wrote the records) and frees the batch."""
    batch: "SilverBatch"
    batch_id: int
    dq: list
    parsed: DataFrame
    classified: DataFrame | None = None
    new_rows: DataFrame | None = None
    observed: tuple = ()

    def finish(self) -> None:
        try:
            if self.new_rows is not None:
                t = time.perf_counter()
                idempotent_append(self.new_rows, self.batch.silver, self.batch.app, self.batch_id)
                self.batch._phase("write_silver", t)
            if self.observed:
                observe.quarantined(*self.observed)
        finally:
            self.release()

    def release(self) -> None:
        if self.classified is not None:
            self.classified.unpersist()
        self.parsed.unpersist()


class SilverBatch:
    """The ``foreachBatch`` function of one silver stream.

    One parse, persisted once. Every count (rows, each structural reason, each expectation's
    failures) comes from one aggregation of the compiled rules, so ``ops.dq_results`` records
    every rule of every batch at no extra pass. Great Expectations itself validates a sample
    of the rows that parsed cleanly (``quality.ge_sample_rows`` every
    ``quality.ge_every_n_batches`` batches): a second opinion on the compiled rules that never
    converts a poison row to pandas and holds its lock for milliseconds."""

    def __init__(self, cfg: Config, stream: str, checkpoint: str, writer: str | None = None):
        self.cfg, self.stream = cfg, stream
        self.settings = Settings.from_config(cfg)
        catalog = Catalog(cfg)
        self.silver = catalog.spec(f"silver.{stream}")
        self.quarantine = catalog.spec(f"quarantine.{stream}")
        self.dq = catalog.spec("ops.dq_results")
        self.app = app_id(checkpoint, f"silver.{stream}", writer)
        self.ge_rows = int(cfg["quality.ge_sample_rows"])
        self.ge_every = max(1, int(cfg["quality.ge_every_n_batches"]))
        if self.ge_rows > 0:
            prepare_suite(stream, self.settings.min_amount)   # ready by the first batch's sample
        self.phases_ms: dict[str, int] = {}   # the last batch's time per phase
        # Transforms and aggregate columns built once and reused by every batch (each build is
        # hundreds of JVM round trips).
        s = self.settings
        self._parse = parse_bronze(stream, s.allowed_lateness_s, s.max_clock_skew_s, s.max_payload_bytes, s.max_field_chars,
                                   s.parser)
        self._rules = add_rule_failures(stream, s.min_amount)
        failed = F.size("reasons") > 0
        self._counts = [
            F.count("*").alias("rows"),
            F.count_if(failed).alias("failed"),
            F.count_if(F.size("unknown_fields") > 0).alias("unknown_fields"),
            *[F.count_if(F.array_contains("reasons", r)).alias(r) for r in STRUCTURAL],
            *[F.count_if(F.array_contains("reasons", rule_name(e))).alias(f"rule{i}") for i, e in enumerate(ALL_SUITES[stream])],
            # Distinct valid ids here, and no list of reasons: a list would make this an object
            # aggregation grouped by event id (three times slower on a 100k-row batch); a batch
            # with failed rows counts its reasons in a job of its own (``_reasons``).
            F.count_distinct(F.when(~failed, F.col("event_id"))).alias("valid_ids"),
            # The valid rows' event times: silver is searched for their ids around these only.
            F.min(F.when(~failed, F.col(EVENT_TIME_FIELD[stream]))).alias("valid_from"),
            F.max(F.when(~failed, F.col(EVENT_TIME_FIELD[stream]))).alias("valid_to"),
        ]

    def _phase(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.phases_ms[name] = round((now - since) * 1000)
        return now

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        staged = self.stage(batch, batch_id)
        if staged is None:
            return
        try:
            t = time.perf_counter()
            idempotent_append(dq_frame(batch.sparkSession, batch_id, staged.dq), self.dq, self.app, batch_id)
            self._phase("write_dq", t)
        except BaseException:
            staged.release()
            raise
        staged.finish()

    def stage(self, batch: DataFrame, batch_id: int) -> StagedSilver | None:
        """Parse, count, deduplicate and write quarantine; the caller writes ``dq`` to
        ``ops.dq_results`` (idempotently) and then calls ``finish`` (silver last: crash safety)."""
        self.phases_ms = {}
        parsed = batch.transform(self._parse).transform(self._rules).persist()
        staged = StagedSilver(self, batch_id, [], parsed)
        try:
            return self._process(batch.sparkSession, staged)
        except BaseException:
            staged.release()
            raise

    def _existing(self, spark: SparkSession, valid: DataFrame, counts: dict) -> DataFrame | None:
        """(event_id, content_hash) of silver rows sharing an id with the batch. The id scan
        reads one column; full rows are read only for the (rare) ids that match.

        With ``pipeline.dedup_horizon_s`` > 0 only silver rows whose event time lies within the
        horizon of the batch's valid event times are searched (Delta skips the other files by
        their statistics): an exact replay carries its first copy's event time and is always
        found; a conflicting one (same id, other content) is found when its event time is
        within the horizon of the first copy's (beyond it, only if another row of its batch
        brings the first copy's time within the horizon). 0 searches all of silver."""
        if counts["valid_from"] is None:
            return None   # no valid row: nothing to look up
        silver = spark.read.format("delta").load(self.silver.location)
        horizon = self.settings.dedup_horizon_s
        if horizon > 0:
            silver = silver.where(near_in_time(EVENT_TIME_FIELD[self.stream], counts["valid_from"], counts["valid_to"], horizon))
        # A semi join keeps each silver row once whatever the batch's copies; no distinct on
        # either side (each costs a shuffle, about half the lookup): repeats fold here.
        ids = sorted({r[0] for r in silver.select("event_id").join(valid.select("event_id"), "event_id", "left_semi").collect()})
        if not ids:
            return None
        return silver.where(F.col("event_id").isin(ids)).select("event_id", content_hash(self.stream).alias("content_hash"))

    @staticmethod
    def _reasons(parsed: DataFrame, counts: dict) -> list[str]:
        """Every reason the batch's failed rows carry, repeats kept (none without a failed row)."""
        if not counts["failed"]:
            return []
        tally = parsed.where(F.size("reasons") > 0).select(F.explode("reasons").alias("r")).groupBy("r").count().collect()
        return [r for r, n in sorted(tally) for _ in range(n)]

    def _process(self, spark: SparkSession, staged: StagedSilver) -> StagedSilver | None:
        parsed, batch_id = staged.parsed, staged.batch_id
        s = self.settings
        t = time.perf_counter()
        suite = ALL_SUITES[self.stream]
        failed = F.size("reasons") > 0
        counts = parsed.agg(*self._counts).first().asDict()
        t = self._phase("parse_and_count", t)
        if counts["rows"] == 0:
            staged.release()
            return None
        rules = [{"expectation": rule_name(e), "success": counts[f"rule{i}"] == 0, "unexpected_count": counts[f"rule{i}"],
                  "element_count": counts["rows"]} for i, e in enumerate(suite)]
        excess = counts["rows"] >= s.min_rows and counts["failed"] / counts["rows"] > s.max_failure_rate
        if excess and s.on_excess == "fail":
            raise PipelineQualityError(
                f"silver.{self.stream} batch {batch_id}: {counts['failed']} of {counts['rows']} rows failed validation, "
                f"above pipeline.max_failure_rate={s.max_failure_rate}; stopping (pipeline.on_excess_failures=fail)")
        duplicates = conflicts = 0
        new_rows = None
        if excess:
            quarantined = parsed.transform(to_quarantine(f"silver.{self.stream}", batch_id, "batch_failure_rate_exceeded"))
        else:
            valid = parsed.where(~failed)
            existing = self._existing(spark, valid, counts)
            bad = parsed.where(failed)
            if existing is None and counts["valid_ids"] == counts["rows"] - counts["failed"]:
                # No id repeats within the batch and none is in silver: every row is a first copy.
                new_rows = valid.transform(to_silver(self.stream))
            else:
                classified = staged.classified = valid.transform(classify_copies(self.stream, existing)).persist()
                copies = classified.agg(F.count_if(F.col("copy") == "duplicate").alias("d"),
                                        F.count_if(F.col("copy") == "conflicting_duplicate").alias("c")).first()
                duplicates, conflicts = int(copies["d"]), int(copies["c"])
                if conflicts:
                    bad = bad.unionByName(classified.where(F.col("copy") == "conflicting_duplicate")
                                          .withColumn("reasons", F.array(F.lit("conflicting_duplicate"))).drop("copy"))
                new_rows = classified.where(F.col("copy").isNull()).transform(to_silver(self.stream))
            t = self._phase("dedup", t)
            quarantined = bad.transform(to_quarantine(f"silver.{self.stream}", batch_id))
        pipeline = [
            {"expectation": "rows", "success": True, "unexpected_count": counts["rows"], "element_count": counts["rows"]},
            {"expectation": "quarantined", "success": counts["failed"] + conflicts == 0,
             "unexpected_count": counts["rows"] if excess else counts["failed"] + conflicts, "element_count": counts["rows"]},
            {"expectation": "duplicates_dropped", "success": duplicates == 0, "unexpected_count": duplicates, "element_count": counts["rows"]},
            {"expectation": "conflicting_duplicates", "success": conflicts == 0, "unexpected_count": conflicts, "element_count": counts["rows"]},
            {"expectation": "malformed_json", "success": counts["malformed_json"] == 0, "unexpected_count": counts["malformed_json"], "element_count": counts["rows"]},
            {"expectation": "late_events", "success": counts["late_event"] == 0, "unexpected_count": counts["late_event"], "element_count": counts["rows"]},
            {"expectation": "unknown_fields", "success": counts["unknown_fields"] == 0, "unexpected_count": counts["unknown_fields"], "element_count": counts["rows"]},
            *[{"expectation": r, "success": counts[r] == 0, "unexpected_count": counts[r], "element_count": counts["rows"]}
              for r in ("invalid_utf8", "payload_too_large", "event_time_out_of_range")],
            {"expectation": "batch_failure_rate", "success": not excess, "unexpected_count": counts["failed"], "element_count": counts["rows"],
             "details": {"bound": s.max_failure_rate, "policy": s.on_excess}},
        ]
        table = f"silver.{self.stream}"
        staged.dq = [(table, f"finlake.silver.{self.stream}", rules), (table, "finlake.pipeline", pipeline)]
        if self.ge_rows > 0 and batch_id % self.ge_every == 0:
            clean = parsed.where(~failed).select(*[f.name for f in SILVER_FIELDS[self.stream].fields]).limit(self.ge_rows)
            staged.dq.append((table, f"finlake.silver.{self.stream}:ge_sample", validate(clean, self.stream, self.ge_rows, s.min_amount)))
            t = self._phase("ge_sample", t)
        # Order matters for crash safety: quarantine, data quality, silver last (module docstring).
        # A batch that quarantined nothing has nothing to write there (a replay finds the same).
        if excess or counts["failed"] + conflicts:
            idempotent_append(quarantined, self.quarantine, self.app, batch_id)
            t = self._phase("write_quarantine", t)
        staged.new_rows = new_rows
        extra = ["batch_failure_rate_exceeded"] * counts["rows"] if excess else ["conflicting_duplicate"] * conflicts
        staged.observed = (table, counts["rows"] if excess else counts["failed"] + conflicts, [*self._reasons(parsed, counts), *extra],
                           counts["rows"] - duplicates)
        return staged


class IngestBatch:
    """The ``foreachBatch`` function of the ingest query: one Kafka read of every stream's
    topic, tokenized once and kept once. Then, per stream (rows of its topic only), the bronze
    append, the silver parse, counts, deduplication and quarantine; one ``ops.dq_results``
    commit for every stream; and last each stream's silver append. Every write is idempotent
    with its own id in the query's checkpoint, and silver comes last, so a replayed batch skips
    what committed and recomputes the rest from the same Kafka bytes. Streams run on
    ``pipeline.ingest_threads`` threads. ``history`` keeps each batch's rows and milliseconds
    per stream and phase.

    ``layers``: ("bronze", "silver") both (``pipeline.ingest: one_query``); ("bronze",) the
    bronze query and ("silver",) the ingest query of ``pipeline.ingest: bronze_apart``, where
    bronze lands in its own short batches however long silver's take."""

    def __init__(self, cfg: Config, topics: dict[str, str], checkpoint: str, layers=("bronze", "silver")):
        catalog = Catalog(cfg)
        self.topics = dict(sorted(topics.items(), key=lambda kv: STREAMS.index(kv[1])))   # topic -> stream
        streams = list(self.topics.values())
        self.bronze = {s: catalog.spec(f"bronze.{s}") for s in streams} if "bronze" in layers else {}
        self.bronze_app = {s: app_id(checkpoint, "ingest", f"bronze.{s}") for s in self.bronze}
        self.silver = {s: SilverBatch(cfg, s, checkpoint, writer=f"silver.{s}") for s in streams} if "silver" in layers else {}
        self.dq = catalog.spec("ops.dq_results")
        self.dq_app = app_id(checkpoint, "ingest", "dq")
        threads = max(1, int(cfg.get("pipeline.ingest_threads", 1) or 1))
        # Bronze alone is one append per stream: all of them side by side.
        self.threads = threads if self.silver else max(threads, len(streams))
        self.history: list[dict] = []

    def _each(self, fn, args: list[tuple]) -> list:
        """``fn`` over ``args``, on ``pipeline.ingest_threads`` threads: each stream's work is
        independent, and threads overlap their driver-side waits (Delta logs, commits, planning)."""
        if self.threads <= 1 or len(args) <= 1:
            return [fn(*a) for a in args]
        sc = SparkContext.getOrCreate()
        pool_name = sc.getLocalProperty("spark.scheduler.pool")   # the query's pool, for the threads' jobs too

        def in_pool(*a):
            sc.setLocalProperty("spark.scheduler.pool", pool_name)
            return fn(*a)

        with ThreadPoolExecutor(self.threads) as pool:
            futures = [pool.submit(in_pool, *a) for a in args]
        failed = next((f.exception() for f in futures if f.exception() is not None), None)
        if failed is not None:
            for f in futures:   # free what the others staged before raising the first failure
                if f.exception() is None and isinstance(f.result(), StagedSilver):
                    f.result().release()
            raise failed
        return [f.result() for f in futures]

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        t0 = time.perf_counter()
        batch = batch.persist()
        try:
            per_topic = {r["topic"]: r["n"] for r in batch.groupBy("topic").agg(F.count("*").alias("n")).collect()}
            record = {"batch_id": batch_id, "rows": sum(per_topic.values()), "read_ms": round((time.perf_counter() - t0) * 1000),
                      "streams": {}}

            def stage(topic: str, stream: str):
                t1 = time.perf_counter()
                rows = batch.where(F.col("topic") == topic)
                if stream in self.bronze:
                    idempotent_append(rows, self.bronze[stream], self.bronze_app[stream], batch_id)
                t2 = time.perf_counter()
                staged = self.silver[stream].stage(rows, batch_id) if stream in self.silver else None
                record["streams"][stream] = {"rows": per_topic[topic], "bronze_ms": round((t2 - t1) * 1000),
                                             "silver_stage_ms": round((time.perf_counter() - t2) * 1000)}
                return staged

            todo = [(t, s) for t, s in self.topics.items() if per_topic.get(t)]
            staged = [x for x in self._each(stage, todo) if x is not None]
            try:
                # Every stream's data-quality rows in one commit, before any silver write.
                t1 = time.perf_counter()
                if staged:
                    idempotent_append(dq_frame(batch.sparkSession, batch_id, [r for x in staged for r in x.dq]),
                                      self.dq, self.dq_app, batch_id)
                record["dq_ms"] = round((time.perf_counter() - t1) * 1000)
            except BaseException:
                for x in staged:
                    x.release()
                raise
            self._each(lambda x: x.finish(), [(x,) for x in staged])
            for stream, silver in self.silver.items():
                if stream in record["streams"]:
                    record["streams"][stream]["silver_phases_ms"] = dict(silver.phases_ms)
            record["total_ms"] = round((time.perf_counter() - t0) * 1000)
            self.history.append(record)
        finally:
            batch.unpersist()


class GoldBatch:
    """The ``foreachBatch`` function of one gold table: the batch's new silver rows plus the
    silver history their windows need, through the view's pure transform (``GOLD_VIEWS``)."""

    def __init__(self, cfg: Config, table: str, checkpoint: str):
        self.cfg, self.table = cfg, table
        catalog = Catalog(cfg)
        self.spec = catalog.spec(table)
        self.view = view = GOLD_VIEWS[table]
        self.driver = catalog.spec(stream_table("silver", view.driver))
        self.others = {o: catalog.spec(stream_table("silver", o)) for o in view.reads}
        self.app = app_id(checkpoint, table)
        # Live batches take merchant and terminal risk from hourly snapshots (0: never).
        self.snapshot_max_hours = int(cfg.get("pipeline.risk_snapshot_max_hours", 0) or 0) if view.risk_snapshots else 0
        self.risk = RiskSnapshots(cfg) if self.snapshot_max_hours > 0 else None
        setting, unit_s = view.lookback
        self.lookback_s = float(cfg[setting]) * unit_s
        self.declared = declared_spec(cfg.get(view.declared)) if view.declared else {}   # ConfigError if malformed

    def _few_hours(self, batch: DataFrame) -> bool:
        """Whether the batch's transactions fall in few enough hours to take their risk from
        hourly snapshots (``pipeline.risk_snapshot_max_hours``; 0: always the exact transform)."""
        most = self.snapshot_max_hours
        return most > 0 and batch.select(risk_asof().alias("h")).distinct().limit(most + 1).count() <= most

    def _history(self, spark: SparkSession, spec: TableSpec, lo, hi) -> DataFrame:
        return spark.read.format("delta").load(spec.location).where(
            (F.col("event_time") >= F.lit(lo)) & (F.col("event_time") <= F.lit(hi)))

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        spark = batch.sparkSession
        view = self.view
        batch = batch.persist()
        try:
            bounds = batch.agg(F.min("event_time").alias("lo"), F.max("event_time").alias("hi")).first()
            if bounds["lo"] is None:
                return
            lo = bounds["lo"] - dt.timedelta(seconds=self.lookback_s)
            hi = bounds["hi"]
            # Windows partition by the view's key (a customer: cards are a customer's; a symbol):
            # only those of this batch need history.
            keys = batch.select(view.key).distinct()
            own = (self._history(spark, self.driver, lo, hi).join(F.broadcast(keys), view.key, "left_semi")
                   .join(batch.select("event_id"), "event_id", "left_anti"))
            rows = own.unionByName(batch)
            others = [self._history(spark, self.others[s], lo, hi).join(
                F.broadcast(batch.select(view.key).distinct()), view.key, "left_semi") for s in view.keyed_reads]
            if self._few_hours(batch):
                # A live batch: merchant and terminal risk from the hour's snapshot (computed
                # once an hour by the same transform), not from 30 days of silver every batch.
                out = view.transform(rows, *others, None).join(batch.select("event_id"), "event_id", "left_semi")
                out = self.risk.attach(out).select(*view.keep, *view.feature_columns)
            elif view.risk_labels:
                # Merchant and terminal risk count every transaction of the batch's merchants and
                # terminals over 30 days before the row's hour, and the labels given since.
                risk_lo = bounds["lo"] - dt.timedelta(milliseconds=RISK_HISTORY_MS)
                risk_history = self._history(spark, self.driver, risk_lo, hi).transform(entity_history(batch))
                labels = spark.read.format("delta").load(self.others[view.risk_labels].location).where(
                    (F.col("labelled_at") >= F.lit(risk_lo)) & (F.col("labelled_at") <= F.lit(hi)))
                out = view.transform(rows, *others, labels, risk_history)
            else:
                out = view.transform(rows, *others)
            if self.declared:   # the user's row-local features, from the batch's own rows
                own = batch.select("event_id", *[c.alias(n) for n, c in declared_features(self.cfg.get(view.declared)).items()])
                out = out.join(own.dropDuplicates(["event_id"]), "event_id")
            else:
                out = out.join(batch.select("event_id"), "event_id", "left_semi")
            # Columns the table lacks (a declaration added later, a feature a newer finlake computes) join it.
            idempotent_append(out, self.spec, self.app, batch_id, merge_schema=True)
        finally:
            batch.unpersist()
