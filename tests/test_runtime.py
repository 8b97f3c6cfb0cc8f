"""The streaming runtime: a failed query comes back from its checkpoint, past the limit the run
fails in one line and stops everything, and its progress is named and written when it stops."""
import time

import pytest

from lakehouse.config import load_config
from lakehouse.failures import QueryFailed
from lakehouse.runtime import StreamingRun


def _flaky(spark, checkpoint, fail_calls, name="flaky"):
    """A start function of a rate-source query whose foreachBatch raises on the ``fail_calls``-th
    calls; ``calls`` records each batch id it was given."""
    calls = []

    def batch(_df, batch_id):
        calls.append(batch_id)
        if len(calls) in fail_calls:
            raise ValueError(f"bad batch {batch_id}")

    def start():
        return (spark.readStream.format("rate").option("rowsPerSecond", 20).load().writeStream.queryName(name)
                .option("checkpointLocation", checkpoint).foreachBatch(batch).trigger(processingTime="0.5 seconds").start())
    return start, calls


def _until(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_failed_query_restarts_from_its_checkpoint_and_its_progress_is_named_and_written(spark, overrides, tmp_path, capsys):
    cfg = load_config("local", [*overrides, "pipeline.max_query_restarts=1"], home=tmp_path)
    start, calls = _flaky(spark, str(tmp_path / "cp"), fail_calls={1})
    run = StreamingRun(spark, cfg, "test")
    run.start(start)
    _until(lambda: run.failed() is not None)
    assert run.check() == 1
    assert capsys.readouterr().out == ("test: query flaky failed (ValueError: bad batch 0); "
                                       "restarting it (1 of pipeline.max_query_restarts=1)\n")
    _until(lambda: len(calls) >= 3)
    assert calls[:2] == [0, 0]   # the failed batch again, from the checkpoint: nothing lost
    assert run.check() == 1 and run.failed() is None
    run.stop()
    assert not any(q.isActive for q in run.queries)
    names = {p.query_name for p in run.progress()}
    assert names == {"flaky"} and all(p.run_id for p in run.progress())
    written = spark.read.format("delta").load(run.catalog.spec("ops.stream_metrics").location)
    assert written.where("query_name = 'flaky'").count() == len(run.progress())
    run.stop()   # idempotent


def test_past_the_restart_limit_the_run_stops_every_query_and_fails_in_one_line(spark, overrides, tmp_path):
    cfg = load_config("local", [*overrides, "pipeline.max_query_restarts=0"], home=tmp_path)
    flaky, _ = _flaky(spark, str(tmp_path / "cp"), fail_calls={1})
    steady, _ = _flaky(spark, str(tmp_path / "cp2"), fail_calls=set(), name="steady")
    run = StreamingRun(spark, cfg, "test")
    run.start(flaky)
    other = run.start(steady)
    _until(lambda: run.failed() is not None)
    with pytest.raises(QueryFailed, match=r"^query flaky failed: ValueError: bad batch 0$"):
        run.supervise(lambda: False, every_s=0.2)
    assert not other.isActive and run.restarts == 0


def test_progress_read_from_json_equals_pysparks_own_conversion(spark, tmp_path):
    import json

    from pyspark.sql import functions as F
    from pyspark.sql.streaming.listener import StreamingQueryProgress

    from lakehouse.metrics import progress_from_json

    spark.range(100).select(F.col("id"), (F.col("id") % 7).alias("k")).write.parquet(str(tmp_path / "in"))
    q = (spark.readStream.schema("id long, k long").parquet(str(tmp_path / "in")).groupBy("k").count()
         .writeStream.format("noop").outputMode("update").queryName("progress_json")
         .option("checkpointLocation", str(tmp_path / "cp")).trigger(availableNow=True).start())
    q.awaitTermination()
    jp = q._jsq.lastProgress()
    theirs, ours = StreamingQueryProgress.fromJObject(jp), progress_from_json(jp.json())
    fields = ("name", "batchId", "timestamp", "numInputRows")
    assert {f: getattr(ours, f) for f in fields} == {f: getattr(theirs, f) for f in fields}
    # Spark's JSON writes rates to one decimal.
    assert (ours.inputRowsPerSecond, ours.processedRowsPerSecond) == (round(theirs.inputRowsPerSecond, 1), round(theirs.processedRowsPerSecond, 1))
    assert (str(ours.id), str(ours.runId), ours.durationMs) == (str(theirs.id), str(theirs.runId), dict(theirs.durationMs))
    assert [(o.numRowsTotal, o.numRowsUpdated, o.numRowsDroppedByWatermark) for o in ours.stateOperators] == \
        [(o.numRowsTotal, o.numRowsUpdated, o.numRowsDroppedByWatermark) for o in theirs.stateOperators] != []

    def offsets(sources):   # pyspark writes a missing offset as the text 'None', ours is None
        return [tuple(None if v in (None, "None") else json.loads(v) for v in (s.startOffset, s.endOffset, s.latestOffset))
                + (s.numInputRows,) for s in sources]
    assert offsets(ours.sources) == offsets(theirs.sources) and ours.sources[0].endOffset is not None
