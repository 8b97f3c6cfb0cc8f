"""Merchant and terminal risk from hourly snapshots of silver, for the decision path and for
live gold batches: one snapshot per (hour, entity) computed by gold's own ``entity_risk``, so
the features equal gold's exact transform whenever silver held the hour's history when the
snapshot was taken."""
from __future__ import annotations

import datetime as dt
import time
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Config


class RiskSnapshots:
    """Merchant and terminal risk for the decision path and live gold batches: for each hour a batch's transactions
    fall in, one snapshot of every entity seen in the 30 days before, computed by gold's own
    ``entity_risk`` from silver's transactions and labels (so a decision's risk features equal
    gold's when silver had the hour's history when the snapshot was taken; it is retaken every
    ``decisions.risk_refresh_s``). Without silver tables, no history is known: counts are 0."""

    def __init__(self, cfg: Config, refresh_s: float | None = None):
        from lakehouse.catalog import Catalog

        catalog = Catalog(cfg)
        self.tx, self.labels = catalog.spec("silver.transactions"), catalog.spec("silver.tx_labels")
        self.refresh_s = float(cfg["decisions.risk_refresh_s"]) if refresh_s is None else refresh_s
        self.cache: dict[int, tuple[float, DataFrame]] = {}
        self.computed = 0
        self._cols: dict | None = None

    def _read(self, spark: SparkSession, spec, ddl: str) -> DataFrame:
        from lakehouse.catalog import read_delta_if_exists

        df = read_delta_if_exists(spark, spec.location)
        return df if df is not None else spark.createDataFrame([], ddl)

    def snapshot(self, spark: SparkSession, asof_ms: int) -> DataFrame:
        """(entity column, key, _asof, the entity's risk features) for every entity with a
        transaction in the 30 days before ``asof_ms``."""
        from lakehouse.gold import DAYS_MS, RISK_ENTITIES, entity_risk

        lo = dt.datetime.fromtimestamp((asof_ms - DAYS_MS["30d"]) / 1000, dt.timezone.utc).replace(tzinfo=None)
        hi = dt.datetime.fromtimestamp(asof_ms / 1000, dt.timezone.utc).replace(tzinfo=None)
        tx = (self._read(spark, self.tx, "event_id string, event_time timestamp, merchant_id string, terminal_id string")
              .where((F.col("event_time") >= F.lit(lo)) & (F.col("event_time") < F.lit(hi)))
              .select("event_id", "event_time", "merchant_id", "terminal_id"))
        labels = (self._read(spark, self.labels, "event_id string, is_fraud boolean, labelled_at timestamp")
                  .where((F.col("labelled_at") >= F.lit(lo)) & (F.col("labelled_at") < F.lit(hi))))
        parts = []
        for prefix, column in RISK_ENTITIES.items():
            anchors = tx.where(F.col(column).isNotNull()).select(F.col(column).alias("_key")).distinct().withColumn("_asof", F.lit(asof_ms))
            risk = anchors.transform(entity_risk(tx, labels, column, prefix))
            parts.append(risk.select(F.lit(column).alias("_entity"), "_key", "_asof",
                                     *[F.col(c).alias(c.removeprefix(prefix + "_")) for c in risk.columns if c.startswith(prefix + "_")]))
        # Checkpointed: the batches that join it analyse a scan, not entity_risk's whole plan.
        out = reduce(DataFrame.unionByName, parts).localCheckpoint(eager=True)
        self.computed += 1
        return out

    def _current(self, spark: SparkSession, asof_ms: int) -> DataFrame:
        from lakehouse.streaming import release_checkpoint

        now = time.time()
        held = self.cache.get(asof_ms)
        if held is None or now - held[0] >= self.refresh_s:
            if held is not None:
                release_checkpoint(held[1])
            self.cache[asof_ms] = (now, self.snapshot(spark, asof_ms))
        for old in sorted(self.cache)[:-3]:   # an hour's batches are done once later hours arrive
            release_checkpoint(self.cache.pop(old)[1])
        return self.cache[asof_ms][1]

    def _columns(self) -> dict:
        """The Column expressions ``attach`` uses, built once: each pyspark function call is
        several round trips to the JVM, and building them per batch cost about 0.5 s."""
        if self._cols is None:
            from lakehouse.gold import RISK_ENTITIES, RISK_FEATURE_GROUPS, risk_asof

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
        from lakehouse.gold import RISK_ENTITIES, risk_asof

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
