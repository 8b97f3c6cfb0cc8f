"""An outside export whose numbers trip a digit scanner: terminal coordinates as doubles with
16-digit fractions, kept extras written as long decimals, 16-digit transaction ids. Through
``jobs/load.py`` (the real broker) and ``jobs/stream.py --available-now``, nothing is quarantined
that the source does not deserve and the extras reach silver byte for byte. A second export
with a fifth of its rows broken makes the run exit non-zero with one line naming the stream,
the share and the top reasons."""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

pytestmark = pytest.mark.kafka

EXTRAS = ["TX_BILL_LAT", "TX_BILL_LON", "TX_TIME_SECONDS", "TX_FRAUD_SCENARIO"]
MAPPING = {
    "description": "another simulator's export, coordinates and all",
    "stream": "transactions", "format": "csv", "options": {"header": "true"}, "time_format": "yyyy-MM-dd HH:mm:ss",
    "columns": {"event_id": "TRANSACTION_ID", "event_time": "TX_DATETIME", "card_pan": "CUSTOMER_ID",
                "customer_id": "CUSTOMER_ID", "merchant_id": "TERMINAL_ID", "terminal_id": "TERMINAL_ID",
                "amount": "TX_AMOUNT", "channel": "TX_CHANNEL", "lat": "TERMINAL_LAT", "lon": "TERMINAL_LON"},
    "values": {"channel": {"POS": "card_present", "ONLINE": "ecommerce"}},
    "defaults": {"currency": "EUR"},
    "extras": EXTRAS,
    "labels": {"is_fraud": "TX_FRAUD", "delay": "1d"},
}


def export(seed: int, rows: int, first_id: int, broken_share: float = 0.0) -> pd.DataFrame:
    """Rows as that simulator writes them; ``broken_share`` of them with a channel finlake does
    not know (KIOSK), which silver must quarantine."""
    rng = np.random.default_rng(seed)
    end = time.time() // 3600 * 3600 - 3600
    t = np.sort(rng.uniform(end - 3 * 86400, end, rows))

    def fraction16(lo, hi):   # a decimal with 16 digits after the point, as text
        return [f"{v:.16f}" for v in rng.uniform(lo, hi, rows)]

    channel = np.where(rng.uniform(size=rows) < 0.3, "ONLINE", "POS").astype(object)
    channel[rng.choice(rows, int(round(rows * broken_share)), replace=False)] = "KIOSK"
    return pd.DataFrame({
        "TRANSACTION_ID": np.arange(rows) + first_id,
        "TX_DATETIME": pd.to_datetime(t, unit="s").strftime("%Y-%m-%d %H:%M:%S"),
        "CUSTOMER_ID": [f"{c}" for c in rng.integers(0, 400, rows)],
        "TERMINAL_ID": [f"{c}" for c in rng.integers(0, 900, rows)],
        "TX_AMOUNT": np.round(rng.uniform(0, 300, rows), 2),
        "TX_CHANNEL": channel,
        "TERMINAL_LAT": fraction16(-60, 60),
        "TERMINAL_LON": fraction16(-179, 179),
        "TX_BILL_LAT": fraction16(-60, 60),
        "TX_BILL_LON": fraction16(-179, 179),
        "TX_TIME_SECONDS": (t - t[0]).astype(np.int64),
        "TX_FRAUD_SCENARIO": rng.integers(0, 4, rows),
        "TX_FRAUD": (rng.uniform(size=rows) < 0.02).astype(int),
    })


def test_an_export_of_long_decimals_loads_whole_and_a_broken_one_fails_in_one_line(spark, cfg, kafka, overrides,
                                                                                   tmp_path_factory, capsys):
    from jobs import load, stream
    from lakehouse.catalog import Catalog
    from lakehouse.config import load_config

    home = tmp_path_factory.mktemp("export_home")
    ecfg = load_config("local", [*overrides, "security.pan_hmac_key_missing=generate", "kafka.topic_prefix=export_"], home=home)
    mapping = home / "mapping.yaml"
    mapping.write_text(yaml.safe_dump(MAPPING))
    # 16-digit transaction ids from 1: one in ten passes Luhn, and none is a card number
    good, broken = export(11, 3000, 10**15), export(12, 1000, 11 * 10**14, broken_share=0.2)
    for name, frame in (("good", good), ("broken", broken)):
        (home / name).mkdir()
        frame.to_csv(home / name / "tx.csv", index=False)
    # a sixth of these 16-digit fractions pass the Luhn check: the old byte scan broke them
    assert any(_luhn(v.split(".")[1]) for v in good["TERMINAL_LON"]) and any(_luhn(str(i)) for i in good["TRANSACTION_ID"])
    args = argparse.Namespace(streams="transactions,tx_labels", layers="bronze,silver", available_now=True, timeout=None)
    try:
        Catalog(ecfg).register(spark)
        loaded = load.run(spark, ecfg, load.build_parser().parse_args(["--mapping", str(mapping), "--source", str(home / "good")]))
        stream.run(spark, ecfg, args)
        catalog = Catalog(ecfg)
        read = lambda t: spark.read.format("delta").load(catalog.spec(t).location)  # noqa: E731
        silver = read("silver.transactions").select("event_id", "lat", "lon", "extras")
        quarantined = read("quarantine.transactions").count()
        silver_rows = silver.count()
        expected = spark.createDataFrame(
            [(str(r.TRANSACTION_ID), float(r.TERMINAL_LAT), float(r.TERMINAL_LON), {c: str(getattr(r, c)) for c in EXTRAS})
             for r in good.itertuples()], "event_id string, lat double, lon double, extras map<string,string>")
        assertDataFrameEqual(silver, expected)
        # the broken export: the run says what fell short, in one line, and exits non-zero
        load.run(spark, ecfg, load.build_parser().parse_args(["--mapping", str(mapping), "--source", str(home / "broken")]))
        capsys.readouterr()
        with pytest.raises(SystemExit) as failed:
            stream.run(spark, ecfg, args)
        line = capsys.readouterr().err.strip()
    finally:
        Catalog(cfg).register(spark)

    assert loaded["per_topic"]["transactions"] == len(good)
    assert (silver_rows, quarantined) == (len(good), 0)
    assert failed.value.code != 0 and "\n" not in line
    assert line.startswith("finlake: error: silver.transactions: 20.0% of 1,000 rows quarantined"), line
    assert "pipeline.max_quarantine_share=0.05" in line and "be_in_set:channel (200)" in line, line


def _luhn(digits: str) -> bool:
    from lakehouse.generators.world import luhn_check_digit

    return luhn_check_digit(digits[:-1]) == digits[-1]
