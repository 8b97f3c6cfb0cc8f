"""The outside-data loader's mapping and transforms on small inline rows (Spark, no broker)."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from lakehouse.loader import MappingError, SourceMapping, to_label_messages, to_messages

MAPPING = {
    "stream": "transactions",
    "time_format": "dd/MM/yyyy HH:mm",
    "columns": {"event_id": "id", "event_time": "when", "card_pan": "card", "customer_id": "cust",
                "merchant_id": "upper(shop)", "amount": "amt", "channel": "how"},
    "values": {"channel": {"WEB": "ecommerce", "SHOP": "card_present"}},
    "defaults": {"currency": "GBP"},
    "extras": ["zip code"],
    "labels": {"is_fraud": "bad", "delay": "2d"},
}
SOURCE = [(7, "01/03/2026 10:15", "4111 1111 1111 1111", "c-1", "acme", "12.345", "WEB", "N1 9GU", 1),
          (8, "01/03/2026 11:00", "ACCT-77", "c-2", "bolt", "3", "SHOP", None, 0),
          (9, "02/03/2026 09:30", "ACCT-77", "c-2", "bolt", "5.5", "KIOSK", "E2", None)]
COLUMNS = "id int, `when` string, card string, cust string, shop string, amt string, how string, `zip code` string, bad int"


def test_source_rows_become_finlake_messages(spark):
    from pyspark.sql import functions as F

    df = spark.createDataFrame(SOURCE, COLUMNS)
    got = [(r.key, json.loads(r.value), r.event_time) for r in df.transform(to_messages(SourceMapping.from_dict(MAPPING))).collect()]
    surrogate = spark.range(1).select(F.lpad(F.pmod(F.xxhash64(F.lit("ACCT-77")), F.lit(10 ** 16)).cast("string"), 16, "0")).first()[0]
    base = {"currency": "GBP"}
    assert got == [
        ("c-1", {"event_id": "7", "event_time": "2026-03-01T10:15:00.000Z", "card_pan": "4111111111111111", "customer_id": "c-1",
                 "merchant_id": "ACME", "amount": 12.35, "channel": "ecommerce", **base, "extras": {"zip code": "N1 9GU"}},
         dt.datetime(2026, 3, 1, 10, 15)),
        ("c-2", {"event_id": "8", "event_time": "2026-03-01T11:00:00.000Z", "card_pan": surrogate, "customer_id": "c-2",
                 "merchant_id": "BOLT", "amount": 3.0, "channel": "card_present", **base, "extras": {}},
         dt.datetime(2026, 3, 1, 11, 0)),
        # An untranslated channel passes unchanged: silver's rules quarantine it with its reason.
        ("c-2", {"event_id": "9", "event_time": "2026-03-02T09:30:00.000Z", "card_pan": surrogate, "customer_id": "c-2",
                 "merchant_id": "BOLT", "amount": 5.5, "channel": "KIOSK", **base, "extras": {"zip code": "E2"}},
         dt.datetime(2026, 3, 2, 9, 30)),
    ]
    assert len(surrogate) == 16 and surrogate.isdigit() and "ACCT" not in json.dumps(got, default=str)


def test_labels_come_from_the_same_rows_after_the_delay_and_never_after_the_load(spark):
    df = spark.createDataFrame(SOURCE, COLUMNS)
    loaded_at = dt.datetime(2026, 3, 3, 12, 0)
    got = [(r.key, json.loads(r.value)) for r in df.transform(to_label_messages(SourceMapping.from_dict(MAPPING), loaded_at)).collect()]
    assert got == [
        ("7", {"event_id": "7", "is_fraud": True, "labelled_at": "2026-03-03T10:15:00.000Z"}),
        ("8", {"event_id": "8", "is_fraud": False, "labelled_at": "2026-03-03T11:00:00.000Z"}),
    ]   # event 9 has no label; none is dated after the load
    later = [json.loads(r.value)["labelled_at"] for r in df.transform(to_label_messages(SourceMapping.from_dict(MAPPING), dt.datetime(2026, 3, 3, 10, 30))).collect()]
    assert later == ["2026-03-03T10:15:00.000Z", "2026-03-03T10:30:00.000Z"]


@pytest.mark.parametrize("change, message", [
    ({"stream": "payments"}, "stream must be one of"),
    ({"columns": {**MAPPING["columns"], "iban": "x"}}, "columns names 'iban', which is no field of transactions"),
    ({"columns": {k: v for k, v in MAPPING["columns"].items() if k != "amount"}}, "required transactions fields with no column and no default: amount"),
    ({"labels": {"is_fraud": "bad", "delay": "two days"}}, "'two days' is not a duration"),
    ({"labels": {"is_fraud": "bad"}}, "exactly one of labelled_at (a column) or delay"),
    ({"format": "xlsx"}, "format must be one of csv, parquet, json"),
    ({"colums": {}}, "unknown key 'colums'"),
])
def test_a_bad_mapping_is_one_clear_error(change, message):
    with pytest.raises(MappingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SourceMapping.from_dict({**MAPPING, **change})


def test_the_example_mapping_loads():
    from tests.conftest import ROOT

    m = SourceMapping.from_yaml(ROOT / "conf/mappings/transactions_example.yaml")
    assert m.stream == "transactions" and m.labels.delay_s == 3 * 86400 and m.unfilled() == []


def test_load_job_refuses_a_bad_mapping_in_one_line(job_env, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    bad = tmp_path / "bad.yaml"
    bad.write_text("stream: transactions\ncolumns: {event_id: id}\n")
    out = subprocess.run([sys.executable, "jobs/load.py", "--mapping", str(bad), "--source", str(tmp_path)], cwd=ROOT, env=job_env,
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip() == (
        f"finlake: error: {bad}: required transactions fields with no column and no default: "
        "event_time, card_pan, customer_id, merchant_id, amount, channel")
