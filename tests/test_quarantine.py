"""The quarantine-share check: one pure rule, a batch run that fails on it (tests/
test_outside_export.py) and a continuous run that warns per window instead."""
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse.quarantine import Watch, spikes


def test_spikes_name_the_stream_the_share_and_the_top_three_reasons():
    counts = {
        "silver.transactions": {"checked": 1000, "quarantined": 203,
                                "reasons": {"malformed_json": 150, "be_in_set:channel": 40, "late_event": 13, "missing_field:amount": 2}},
        "silver.tx_labels": {"checked": 1000, "quarantined": 50, "reasons": {"missing_field:is_fraud": 50}},  # at the bound: fine
        "silver.user_events": {"checked": 40, "quarantined": 40, "reasons": {"malformed_json": 40}},          # too few rows to judge
    }
    assert spikes(counts, 0.05, 50) == [
        "silver.transactions: 20.3% of 1,000 rows quarantined, above pipeline.max_quarantine_share=0.05; "
        "top reasons: malformed_json (150), be_in_set:channel (40), late_event (13)"]
    assert spikes(counts, 0.25, 50) == [] and len(spikes(counts, 0.01, 10)) == 3


def test_a_continuous_run_warns_per_window_with_a_row_a_gauge_and_a_line(spark, cfg, capsys):
    from lakehouse import observe
    from lakehouse.catalog import Catalog

    catalog = Catalog(cfg)
    watch = Watch(spark, cfg, catalog, window_s=0)
    observe.quarantined("silver.watch_test", 30, ["malformed_json"] * 30 + ["late_event"] * 5, checked=100)
    observe.quarantined("silver.watch_quiet", 1, ["late_event"], checked=100)
    line = ("silver.watch_test: 30.0% of 100 rows quarantined, above pipeline.max_quarantine_share=0.05; "
            "top reasons: malformed_json (30), late_event (5)")
    assert watch.tick() == [line]
    assert capsys.readouterr().err == f"finlake: warning: {line} (the last 0 s)\n"
    assert watch.tick() == []   # nothing new in the next window
    dq = spark.read.format("delta").load(catalog.spec("ops.dq_results").location).where(F.col("table").startswith("silver.watch_"))
    assertDataFrameEqual(dq.select("table", "suite", "expectation", "success", "unexpected_count", "element_count"),
                         spark.createDataFrame([("silver.watch_test", "finlake.quarantine_watch", "quarantine_share", "false", 30, 100)],
                                               "table string, suite string, expectation string, success string, "
                                               "unexpected_count long, element_count long"))
    assert observe.QUARANTINE_SHARE.labels("silver.watch_test")._value.get() == 0.3
    assert observe.QUARANTINE_SHARE.labels("silver.watch_quiet")._value.get() == 0.01
