"""Progress records by name, and a layer's freshness against its source (lakehouse.metrics)."""
from __future__ import annotations

import datetime as dt

import pytest

from lakehouse.metrics import QueryProgress, seconds_behind
from lakehouse.schemas.tables import STREAM_METRICS


def test_a_progress_record_is_named_as_the_stream_metrics_columns():
    rec = QueryProgress("ingest", "r1", 3, dt.datetime(2026, 1, 1), 10, 1.0, 2.0, 350, 0, {"addBatch": 300.0})
    assert rec._fields == tuple(STREAM_METRICS.fieldNames())
    assert (rec.query_name, rec.num_input_rows, rec.batch_duration_ms, rec.metrics["addBatch"]) == ("ingest", 10, 350, 300.0)


@pytest.mark.parametrize("landed, now, expected", [
    (300, 20.0, 0.0),     # it has what the last look counted
    (500, 20.0, 0.0),     # more than that (the source moved since): not behind
    (100, 20.0, 15.0),    # the source held 100 at t = 5 (half-way between 0 at 0 and 200 at 10)
    (200, 20.0, 10.0),    # exactly the second look
    (250, 20.0, 7.5),     # half-way between 200 at 10 and 300 at 15: held at 12.5
    (0, 20.0, 20.0),      # nothing landed: behind since the first look
    (0, 21.0, 21.0),
])
def test_a_layer_is_as_far_behind_as_when_the_source_held_what_it_has(landed, now, expected):
    samples = [(0.0, 0), (10.0, 200), (15.0, 300)]
    assert seconds_behind(samples, landed, now) == pytest.approx(expected)


def test_a_source_that_did_not_move_between_looks_is_read_at_its_last_change():
    samples = [(0.0, 0), (10.0, 100), (20.0, 100), (30.0, 200)]
    assert seconds_behind(samples, 100, 40.0) == pytest.approx(20.0)   # the source still held 100 at 20
    assert seconds_behind(samples, 150, 40.0) == pytest.approx(15.0)   # half-way between 100 at 20 and 200 at 30
    assert seconds_behind([], 5, 1.0) == 0.0


def test_ingest_batch_summary_means_each_phase_per_stream():
    from lakehouse.metrics import ingest_batch_summary

    history = [
        {"batch_id": 1, "rows": 30, "total_ms": 1000, "streams": {
            "transactions": {"rows": 20, "bronze_ms": 100, "silver_stage_ms": 600, "silver_phases_ms": {"dedup": 300}},
            "user_events": {"rows": 10, "bronze_ms": 50, "silver_stage_ms": 200, "silver_phases_ms": {"dedup": 100}}}},
        {"batch_id": 2, "rows": 5, "total_ms": 3000, "streams": {
            "transactions": {"rows": 5, "bronze_ms": 300, "silver_stage_ms": 1000, "silver_phases_ms": {"dedup": 500, "ge_sample": 40}}}},
    ]
    assert ingest_batch_summary(history) == {
        "batches": 2, "rows": 35, "mean_ms": 2000, "max_ms": 3000,
        "per_stream_mean_ms": {"transactions": {"bronze_ms": 200, "silver_stage_ms": 800, "dedup_ms": 400, "ge_sample_ms": 40},
                               "user_events": {"bronze_ms": 50, "silver_stage_ms": 200, "dedup_ms": 100}}}
    assert ingest_batch_summary([]) == {"batches": 0}
