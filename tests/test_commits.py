"""Idempotent appends (lakehouse.commits): a replayed batch lands once, in this process and in
the next one, whichever way the earlier commit was written."""
from __future__ import annotations

import pytest
from pyspark.testing import assertDataFrameEqual

from lakehouse import commits
from lakehouse.catalog import TableSpec
from lakehouse.commits import app_id, idempotent_append, marker, newest_committed

SCHEMA = "id long, batch long"


def _spec(path) -> TableSpec:
    return TableSpec("t.x", "t", "x", str(path), str(path) + "_ckpt", None, (), None, "")


def _rows(spark, batch: int, n: int = 2):
    return spark.createDataFrame([(i, batch) for i in range(n)], SCHEMA)


def _read(spark, spec):
    return spark.read.format("delta").load(spec.location).select("batch").groupBy("batch").count()


@pytest.fixture(autouse=True)
def _forget_all():
    commits.forget()
    yield
    commits.forget()


def test_a_replayed_batch_lands_once_in_this_process_and_the_next(spark, tmp_path):
    spec = _spec(tmp_path / "t")
    app = app_id(str(tmp_path / "ckpt"), "q")
    assert [idempotent_append(_rows(spark, b), spec, app, b) for b in (0, 1, 1, 0)] == [True, True, False, False]
    commits.forget()   # a new process: what it knows comes from the table
    assert newest_committed(spark, spec.location, app) == 1
    assert [idempotent_append(_rows(spark, b), spec, app, b) for b in (1, 2)] == [False, True]
    assertDataFrameEqual(_read(spark, spec), spark.createDataFrame([(0, 2), (1, 2), (2, 2)], "batch long, count long"))
    # Another writer's batches are its own, and each commit says whose it is.
    other = app_id(str(tmp_path / "ckpt2"), "q")
    assert idempotent_append(_rows(spark, 1, 1), spec, other, 1)
    history = spark.sql(f"DESCRIBE HISTORY delta.`{spec.location}`").select("version", "userMetadata")
    assertDataFrameEqual(history, spark.createDataFrame(
        [(0, marker(app, 0)), (1, marker(app, 1)), (2, marker(app, 2)), (3, marker(other, 1))], "version long, userMetadata string"))


def test_a_writer_older_than_the_recent_commits_and_earlier_txn_commits_are_found(spark, tmp_path):
    spec = _spec(tmp_path / "t")
    app = app_id(str(tmp_path / "ckpt"), "q")
    # A commit of an earlier finlake (Delta's txnAppId), then more commits by others than the
    # recent window holds.
    _rows(spark, 5).write.format("delta").option("txnAppId", app).option("txnVersion", 5).save(spec.location)
    early = app_id(str(tmp_path / "early"), "q")
    idempotent_append(_rows(spark, 50, 1), spec, early, 7)   # this finlake's marker, soon out of the recent window
    busy = app_id(str(tmp_path / "busy"), "q")
    for b in range(commits.RECENT + 2):
        idempotent_append(_rows(spark, 100 + b, 1), spec, busy, b)
    commits.forget()
    assert newest_committed(spark, spec.location, app) == 5
    assert newest_committed(spark, spec.location, early) == 7
    assert [idempotent_append(_rows(spark, b), spec, app, b) for b in (5, 6)] == [False, True]
    assertDataFrameEqual(_read(spark, spec).where("batch < 50"), spark.createDataFrame([(5, 2), (6, 2)], "batch long, count long"))


def test_a_failed_write_is_forgotten(spark, tmp_path):
    spec = _spec(tmp_path / "t")
    app = app_id(str(tmp_path / "ckpt"), "q")
    assert idempotent_append(_rows(spark, 0), spec, app, 0)
    with pytest.raises(Exception):
        idempotent_append(spark.createDataFrame([("x",)], "id string"), spec, app, 1)   # schema mismatch
    assert (spec.location, app) not in commits._newest
    assert idempotent_append(_rows(spark, 1), spec, app, 1)
    assert newest_committed(spark, spec.location, app) == 1
