"""Merchant and terminal risk from hourly snapshots of silver, for the decision path and for
live gold batches: one snapshot per (hour, entity) computed by gold's own ``entity_risk``, so
the features equal gold's exact transform whenever silver held the hour's history when the
snapshot was taken."""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
import threading
import time
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.catalog import Catalog, read_delta_if_exists
from lakehouse.config import Config
from lakehouse.gold import DAYS_MS, RISK_ENTITIES, RISK_FEATURE_GROUPS, RISK_LABEL_LAG_MS, RISK_SNAPSHOT_MS, entity_risk, risk_asof
from lakehouse.jvm import java_strings, release_checkpoint


class RiskSnapshots:
    """Merchant and terminal risk for the decision path and live gold batches: for each hour a batch's transactions
    fall in, one snapshot of every entity seen in the 30 days before, computed by gold's own
    ``entity_risk`` from silver's transactions and labels (so a decision's risk features equal
    gold's when silver had the hour's history when the snapshot was taken; it is retaken every
    ``decisions.risk_refresh_s``). Without silver tables, no history is known: counts are 0."""

    def __init__(self, cfg: Config, refresh_s: float | None = None):
        catalog = Catalog(cfg)
        self.tx, self.labels = catalog.spec("silver.transactions"), catalog.spec("silver.tx_labels")
        self.refresh_s = float(cfg["decisions.risk_refresh_s"]) if refresh_s is None else refresh_s
        self.cache: dict[int, tuple[float, DataFrame]] = {}
        self.computed = 0
        self._cols: dict | None = None
        self._lock = threading.Lock()
        self._fresh: dict[int, tuple[float, DataFrame]] = {}   # refreshed snapshots, swapped in by _current
        self._refreshing: set[int] = set()

    def _read(self, spark: SparkSession, spec, ddl: str) -> DataFrame:
        df = read_delta_if_exists(spark, spec.location)
        return df if df is not None else spark.createDataFrame([], ddl)

    def snapshot(self, spark: SparkSession, asof_ms: int) -> DataFrame:
        """``snapshot_frame``, computed once (checkpointed): the batches that join it analyse a
        scan, not entity_risk's whole plan."""
        out = self.snapshot_frame(spark, asof_ms).localCheckpoint(eager=True)
        self.computed += 1
        return out

    def snapshot_frame(self, spark: SparkSession, asof_ms: int) -> DataFrame:
        """(entity column, key, _asof, the entity's risk features) for every entity with a
        transaction in the 30 days (plus the labels' lag, RISK_LABEL_LAG_MS) before ``asof_ms``."""
        lo = dt.datetime.fromtimestamp((asof_ms - DAYS_MS["30d"] - RISK_LABEL_LAG_MS) / 1000, dt.timezone.utc).replace(tzinfo=None)
        label_lo = dt.datetime.fromtimestamp((asof_ms - DAYS_MS["30d"]) / 1000, dt.timezone.utc).replace(tzinfo=None)
        hi = dt.datetime.fromtimestamp(asof_ms / 1000, dt.timezone.utc).replace(tzinfo=None)
        tx = (self._read(spark, self.tx, "event_id string, event_time timestamp, merchant_id string, terminal_id string")
              .where((F.col("event_time") >= F.lit(lo)) & (F.col("event_time") < F.lit(hi)))
              .select("event_id", "event_time", "merchant_id", "terminal_id"))
        labels = (self._read(spark, self.labels, "event_id string, is_fraud boolean, labelled_at timestamp")
                  .where((F.col("labelled_at") >= F.lit(label_lo)) & (F.col("labelled_at") < F.lit(hi))))
        parts = []
        for prefix, column in RISK_ENTITIES.items():
            anchors = tx.where(F.col(column).isNotNull()).select(F.col(column).alias("_key")).distinct().withColumn("_asof", F.lit(asof_ms))
            risk = anchors.transform(entity_risk(tx, labels, column, prefix))
            parts.append(risk.select(F.lit(column).alias("_entity"), "_key", "_asof",
                                     *[F.col(c).alias(c.removeprefix(prefix + "_")) for c in risk.columns if c.startswith(prefix + "_")]))
        return reduce(DataFrame.unionByName, parts)

    def _current(self, spark: SparkSession, asof_ms: int) -> DataFrame:
        """The hour's snapshot. The first time an hour is asked for it is computed here; after
        ``refresh_s`` it is recomputed in the background and swapped in at a later call, so a
        batch never waits for a refresh (it joins the snapshot it has until the new one is in)."""
        with self._lock:
            fresh = self._fresh.pop(asof_ms, None)
        if fresh is not None:
            old = self.cache.get(asof_ms)
            if old is not None:
                release_checkpoint(old[1])
            self.cache[asof_ms] = fresh
        held = self.cache.get(asof_ms)
        if held is None:
            self.cache[asof_ms] = (time.time(), self.snapshot(spark, asof_ms))
        elif time.time() - held[0] >= self.refresh_s:
            self._refresh_later(spark, asof_ms)
        for old in sorted(self.cache)[:-3]:   # an hour's batches are done once later hours arrive
            release_checkpoint(self.cache.pop(old)[1])
            with self._lock:
                orphan = self._fresh.pop(old, None)   # a refresh that finished after its hour's last batch
            if orphan is not None:
                release_checkpoint(orphan[1])
        return self.cache[asof_ms][1]

    def _refresh_later(self, spark: SparkSession, asof_ms: int) -> None:
        with self._lock:
            if asof_ms in self._refreshing:
                return
            self._refreshing.add(asof_ms)

        def work():
            try:
                taken = time.time()
                snap = self.snapshot(spark, asof_ms)
                with self._lock:
                    self._fresh[asof_ms] = (taken, snap)
            except Exception:  # noqa: BLE001 - the held snapshot stays; the next batch past refresh_s tries again
                pass
            finally:
                with self._lock:
                    self._refreshing.discard(asof_ms)

        threading.Thread(target=work, name=f"risk-refresh-{asof_ms}", daemon=True).start()

    def _columns(self) -> dict:
        """The Column expressions ``attach`` uses, built once: each pyspark function call is
        several round trips to the JVM, and building them per batch cost about 0.5 s."""
        if self._cols is None:
            cols: dict = {"_asof": risk_asof()}
            for prefix, column in RISK_ENTITIES.items():
                names = RISK_FEATURE_GROUPS[f"{prefix}_risk"]
                pick = [F.col("_key").alias(column), F.col("_asof"), *[F.col(n.removeprefix(prefix + "_")).alias(n) for n in names]]
                # An entity with no transaction in the 30 days before has counts 0, as in gold.
                fill = {n: (F.when(F.col(column).isNotNull(), F.coalesce(F.col(n), F.lit(0))) if "_tx_count_" in n
                            else F.col(n)).cast("double") for n in names}
                cols[column] = (F.col("_entity") == column, pick, fill, {n: F.lit(None).cast("double") for n in names})
            self._cols = cols
        return self._cols

    def attach(self, batch: DataFrame, hours: list[int] | None = None) -> DataFrame:
        """The batch with the risk features of each transaction's entities as of its hour.
        ``hours``: the batch's distinct ``risk_asof`` values, when the caller has them already
        (else one job finds them)."""
        spark = batch.sparkSession
        if hours is None:
            hours = [r[0] for r in batch.select(risk_asof().alias("h")).distinct().collect()]
        cols = self._columns()
        out = batch.withColumn("_asof", cols["_asof"])
        if not hours:
            snaps = None
        else:
            snaps = self._current(spark, int(hours[0]))
            for h in hours[1:]:
                snaps = snaps.unionByName(self._current(spark, int(h)))
        for column in RISK_ENTITIES.values():
            entity, pick, fill, nulls = cols[column]
            if snaps is None:
                out = out.withColumns(nulls)
                continue
            out = out.join(F.broadcast(snaps.where(entity).select(*pick)), [column, "_asof"], "left").withColumns(fill)
        return out.drop("_asof")


def risk_names() -> list[str]:
    """The risk features of one entity without its prefix, in order (the same for each entity)."""
    prefix = next(iter(RISK_ENTITIES))
    return [n.removeprefix(prefix + "_") for n in RISK_FEATURE_GROUPS[f"{prefix}_risk"]]


class ServedRisk:
    """Merchant and terminal risk for a decision plan, looked up in the JVM (``finlake.Risk``)
    from a snapshot file this class writes: the snapshots (``RiskSnapshots.snapshot_frame``,
    gold's own ``entity_risk``) of the hour before now, this hour and the next, so a streaming
    plan joins no table per micro-batch. ``refresh`` retakes this hour's and the next hour's
    every ``decisions.risk_refresh_s`` and rewrites the file (atomically); the plan's tasks
    re-read it when it changes. A row whose hour is outside the file (a replay of old events)
    is decided with its entities' counts 0 and shares null, as an entity with no history."""

    def __init__(self, cfg: Config, path: str):
        self.snapshots = RiskSnapshots(cfg)
        self.path = path
        self.refresh_s = self.snapshots.refresh_s
        self.hours: dict[int, list] = {}     # asof ms -> rows [entity, key, asof, values...]
        self.written_at = 0.0
        self.computed = 0

    def write(self, spark: SparkSession, now_ms: int | None = None) -> int:
        """Take the snapshots around ``now_ms`` and write the file; returns its row count."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        hour = now_ms // RISK_SNAPSHOT_MS * RISK_SNAPSHOT_MS
        names = risk_names()
        wanted = [hour - RISK_SNAPSHOT_MS, hour, hour + RISK_SNAPSHOT_MS]
        for h in wanted:
            if h in self.hours and h < hour:
                continue   # a past hour's snapshot: taken once it was current
            pdf = self.snapshots.snapshot_frame(spark, h).toPandas()
            self.computed += 1
            rows = []
            for entity, key, asof, *values in pdf[["_entity", "_key", "_asof", *names]].itertuples(index=False, name=None):
                rows.append([entity, key, int(asof), *[None if v is None or math.isnan(float(v)) else float(v) for v in values]])
            self.hours[h] = rows
        for h in [h for h in self.hours if h not in wanted]:
            del self.hours[h]
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".risk-")
        with os.fdopen(fd, "w") as f:
            json.dump({"features": names, "rows": [r for h in wanted for r in self.hours[h]]}, f)
        os.replace(tmp, self.path)
        self.written_at = time.time()
        return sum(len(self.hours[h]) for h in wanted)

    def due(self) -> bool:
        return time.time() - self.written_at >= self.refresh_s

    def register(self, spark: SparkSession, name: str, refresh_s: float = 2.0) -> None:
        """The file as the Spark SQL function ``name(entity column, key, asof ms)``."""
        spark.sparkContext._jvm.finlake.Risk.register(spark._jsparkSession, name, self.path, java_strings(spark, risk_names()),
                                                      int(refresh_s * 1000))

    @staticmethod
    def columns(name: str) -> dict:
        """The risk feature columns (gold's names) of a transaction row, from the function
        ``name``: as ``RiskSnapshots.attach`` gives them (counts 0 for an entity with no
        transaction in the 30 days before, shares null)."""
        out = {}
        for prefix, column in RISK_ENTITIES.items():
            values = F.call_function(name, F.lit(column), F.col(column), risk_asof().cast("long"))
            for i, n in enumerate(risk_names()):
                v = values[i]
                out[f"{prefix}_{n}"] = (F.when(F.col(column).isNotNull(), F.coalesce(v, F.lit(0.0))) if "_tx_count_" in f"_{n}"
                                        else v).cast("double")
        return out
