"""pipeline.ingest: the query names per mode, and a bronze query added to a deployment whose
ingest query wrote bronze starts where that query's bronze ended."""
from __future__ import annotations

import json
from pathlib import Path

from lakehouse.config import load_config
from lakehouse.streaming import _bronze_handover, committed_offsets, ingest_checkpoint, kafka_query, silver_query
from lakehouse.topology import STREAMS


def _batch(folder: Path, n: int, offsets: dict, commit: bool = True) -> None:
    (folder / "offsets").mkdir(parents=True, exist_ok=True)
    (folder / "commits").mkdir(parents=True, exist_ok=True)
    (folder / "offsets" / str(n)).write_text("v1\n" + json.dumps({"batchWatermarkMs": 0, "conf": {}}) + "\n" + json.dumps(offsets))
    if commit:
        (folder / "commits" / str(n)).write_text('v1\n{"nextBatchWatermarkMs":0}')


def test_query_names_per_mode(tmp_path):
    names = {}
    for mode in ("one_query", "bronze_apart", "per_layer"):
        cfg = load_config("local", [f"pipeline.ingest={mode}"], home=tmp_path)
        names[mode] = (kafka_query(cfg, "transactions"), silver_query(cfg, "transactions"))
    assert names == {"one_query": ("ingest", "ingest"), "bronze_apart": ("bronze", "ingest"),
                     "per_layer": ("bronze_transactions", "silver_transactions")}


def test_a_new_bronze_query_takes_over_where_the_ingest_querys_bronze_ended(tmp_path):
    cfg = load_config("local", ["pipeline.ingest=bronze_apart"], home=tmp_path)
    ingest, bronze = Path(ingest_checkpoint(cfg, STREAMS)), ingest_checkpoint(cfg, STREAMS, "bronze")
    assert committed_offsets(str(ingest)) is None and _bronze_handover(cfg, STREAMS, bronze) == {}
    _batch(ingest, 0, {"t": {"0": 5}})
    _batch(ingest, 1, {"t": {"0": 9, "1": 4}, "u": {"0": 2}})
    _batch(ingest, 2, {"t": {"0": 12, "1": 4}, "u": {"0": 3}}, commit=False)   # planned, never committed
    assert committed_offsets(str(ingest)) == {"t": {"0": 9, "1": 4}, "u": {"0": 2}}
    # The ingest query of a bronze_apart deployment writes no bronze: nothing to take over.
    assert _bronze_handover(cfg, STREAMS, bronze) == {}
    (ingest / "_finlake_app_id.bronze.transactions").write_text("ingest-1")   # it wrote bronze (one_query)
    assert _bronze_handover(cfg, STREAMS, bronze) == {"t": {"0": 9, "1": 4}, "u": {"0": 2}}
    _batch(Path(bronze), 0, {"t": {"0": 9, "1": 4}, "u": {"0": 2}})   # once started, its own checkpoint rules
    assert _bronze_handover(cfg, STREAMS, bronze) == {}
