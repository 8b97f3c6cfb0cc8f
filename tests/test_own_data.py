"""A user's own data, end to end: files another source wrote, in its own shape, through the
loader (Kafka, event-time timestamps), the pipeline, training and the registry, with no
generator truth anywhere.

The data is made here the way public fraud simulators make it (customers with their own
spending habits, terminals, compromised cards whose later payments are fraud, card-testing
bursts online, large amounts), with its own id formats, channel names, a text time format and a
column finlake has no field for. Labels sit in the same rows and become known three days later.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import time

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from tests.conftest import ML_GRID

pytestmark = pytest.mark.kafka

DAYS = 21
MAPPING = "conf/mappings/transactions_example.yaml"


def outside_transactions(seed: int = 5, customers: int = 300, terminals: int = 200) -> pd.DataFrame:
    """Another source's export: TRANSACTION_ID (an integer), TX_DATETIME (text), CUSTOMER_ID
    (C000123), CARD_ID (an account id, not a card number), TERMINAL_ID (T0042), TX_AMOUNT,
    TX_CHANNEL (POS / ONLINE / KIOSK, the last one unknown to finlake), BILLING_ZIP, IP_KM (how far
    the payer's IP address places them from the billing address, a column finlake has no field
    for: far for card testing, noise otherwise), ENTRY_MODE (how the card was read, CHIP / SWIPE /
    KEYED, another such column: a copied stripe for most stolen-card payments), TX_FRAUD."""
    rng = np.random.default_rng(seed)
    end = (time.time() // 3600 - 1) * 3600
    start = end - DAYS * 86400
    mean = rng.uniform(10, 90, customers)
    online = rng.uniform(0.05, 0.4, customers)
    rows = []
    for c in range(customers):
        n = rng.poisson(2.2 * DAYS)
        t = np.sort(rng.uniform(start, end, n))
        amount = np.round(np.abs(rng.normal(mean[c], mean[c] / 2, n)) + 1, 2)
        channel = np.where(rng.uniform(size=n) < online[c], "ONLINE", "POS")
        for i in range(n):
            rows.append([t[i], c, int(rng.integers(terminals)), amount[i], channel[i], 0])
    tx = pd.DataFrame(rows, columns=["t", "c", "term", "amount", "channel", "fraud"])
    # Compromised cards: from the day a card is stolen, a third of its payments for a week are
    # fraud at about five times the customer's usual amount.
    for day in range(3, DAYS):
        for c in rng.choice(customers, 2, replace=False):
            window = (tx["c"] == c) & (tx["t"] >= start + day * 86400) & (tx["t"] < start + (day + 7) * 86400)
            hit = window & (rng.uniform(size=len(tx)) < 1 / 3)
            tx.loc[hit, "amount"] = np.round(tx.loc[hit, "amount"] * 5, 2)
            tx.loc[hit, "fraud"] = 1
    # Card testing: bursts of small online payments a few seconds apart on a stolen card.
    bursts = []
    for _ in range(DAYS * 3):
        c, t0 = int(rng.integers(customers)), rng.uniform(start + 86400, end - 3600)
        for k in range(int(rng.integers(3, 7))):
            bursts.append([t0 + 20 * k, c, int(rng.integers(terminals)), round(float(rng.uniform(1, 5)), 2), "ONLINE", 1])
    tx = pd.concat([tx, pd.DataFrame(bursts, columns=tx.columns)], ignore_index=True)
    testing = np.r_[np.zeros(len(tx) - len(bursts), bool), np.ones(len(bursts), bool)]
    tx["ip_km"] = np.round(np.abs(rng.normal(0, 40, len(tx))) + np.where(testing, rng.uniform(100, 3000, len(tx)), 0), 1)
    # Card read by chip mostly, keyed in online; a stolen card's copied stripe is swiped (its own
    # generator, so the other columns are drawn as before).
    u = np.random.default_rng(seed + 1).uniform(size=len(tx))
    stolen = (tx["fraud"].to_numpy() == 1) & ~testing
    tx["entry"] = np.where(tx["channel"].to_numpy() == "ONLINE", "KEYED",
                           np.where(stolen & (u < 0.7), "SWIPE", np.where(u < 0.92, "CHIP", "SWIPE")))
    tx.loc[tx["amount"] > 220, "fraud"] = 1                              # large amounts
    tx.loc[rng.choice(len(tx), 25, replace=False), "channel"] = "KIOSK"  # a channel finlake does not know
    tx = tx.sort_values("t").reset_index(drop=True)
    return pd.DataFrame({
        "TRANSACTION_ID": np.arange(len(tx)) + 1_000_000,
        "TX_DATETIME": pd.to_datetime(tx["t"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S"),
        "CUSTOMER_ID": [f"C{c:06d}" for c in tx["c"]],
        "CARD_ID": [f"ACCT-{c}-X" for c in tx["c"]],
        "TERMINAL_ID": [f"T{t:04d}" for t in tx["term"]],
        "TX_AMOUNT": tx["amount"],
        "TX_CHANNEL": tx["channel"],
        "BILLING_ZIP": [f"{75000 + c % 20:05d}" for c in tx["c"]],
        "IP_KM": tx["ip_km"],
        "ENTRY_MODE": tx["entry"],
        "TX_FRAUD": tx["fraud"].astype(int),
    })


def test_outside_data_loads_through_kafka_and_trains_a_model_that_beats_its_baseline(spark, cfg, kafka, overrides,
                                                                                       tmp_path_factory):
    from jobs import load, stream
    from lakehouse.catalog import Catalog
    from lakehouse.config import load_config
    from ml import registry
    from ml.train import train_use_case

    import yaml

    home = tmp_path_factory.mktemp("own_home")
    # The user keeps IP_KM and ENTRY_MODE and declares them features, a number and a category
    # (the example mapping plus two columns).
    ocfg = load_config("local", [*overrides, *ML_GRID, "security.pan_hmac_key_missing=generate", "kafka.topic_prefix=own_",
                                 "ml.features.fraud.drop_groups=[user_events]", "features.transactions.numeric=[IP_KM]",
                                 "features.transactions.categorical={ENTRY_MODE: [CHIP, SWIPE]}"], home=home)
    mapping = yaml.safe_load(open(MAPPING))
    mapping["extras"] = [*mapping["extras"], "IP_KM", "ENTRY_MODE"]
    (home / "mapping.yaml").write_text(yaml.safe_dump(mapping))
    source = outside_transactions()
    folder = home / "export"
    folder.mkdir()
    source.to_csv(folder / "transactions.csv", index=False)
    kiosk = set(source.loc[source["TX_CHANNEL"] == "KIOSK", "TRANSACTION_ID"].astype(str))
    try:
        Catalog(ocfg).register(spark)
        loaded = load.run(spark, ocfg, load.build_parser().parse_args(["--mapping", str(home / "mapping.yaml"), "--source", str(folder)]))
        stream.run(spark, ocfg, argparse.Namespace(streams="transactions,tx_labels,user_events", layers="bronze,silver,gold",
                                                   available_now=True, timeout=None))
        catalog = Catalog(ocfg)
        read = lambda t: spark.read.format("delta").load(catalog.spec(t).location)  # noqa: E731
        silver, quarantine = read("silver.transactions"), read("quarantine.transactions")
        q = quarantine.select(F.get_json_object("payload", "$.event_id").alias("event_id"), "reasons").toPandas()
        one = silver.where(F.col("event_id") == str(source["TRANSACTION_ID"].iloc[0])).first()
        silver_text = " ".join(str(r) for r in silver.limit(200).collect())
        result = train_use_case(spark, ocfg, "fraud")
        client = registry.connect(ocfg)
        version = registry.alias_version(client, "finlake-fraud", registry.CHAMPION)
        run = client.get_run(version.run_id)
        gains = registry.load_booster("finlake-fraud", str(version.version)).get_score(importance_type="total_gain")
    finally:
        Catalog(cfg).register(spark)

    # Every row arrived (the 21-day replay outlived the topics' 24-hour retention) and is in
    # silver or, for the channel finlake does not know, in quarantine with the reason.
    assert loaded["per_topic"] == {"transactions": len(source), "tx_labels": len(source)}
    assert loaded["retention_ms"] and all(ms > DAYS * 86_400_000 for ms in loaded["retention_ms"].values())
    assert silver.count() == len(source) - len(kiosk)
    assert set(q["event_id"]) == kiosk and all(list(r) == ["be_in_set:channel"] for r in q["reasons"])
    # Mapped channel, the mapping's currency, silver's defaults, the kept column, a tokenized card.
    first = source.iloc[0]
    assert (one.channel, one.currency, one.merchant_country, one.mcc, one.merchant_id, one.customer_id) == (
        {"POS": "card_present", "ONLINE": "ecommerce"}[first["TX_CHANNEL"]], "EUR", "ZZ", "0000", first["TERMINAL_ID"],
        first["CUSTOMER_ID"])
    assert one.extras == {"BILLING_ZIP": first["BILLING_ZIP"], "IP_KM": str(first["IP_KM"]), "ENTRY_MODE": first["ENTRY_MODE"]}
    assert len(one.card_token) == 64
    assert len(one.card_last4) == 4
    assert one.event_time == dt.datetime.strptime(first["TX_DATETIME"], "%Y-%m-%d %H:%M:%S")
    assert "ACCT-" not in silver_text
    # Trained and registered with no truth table: no ceiling, the configured groups left out,
    # the features this data never fills left out and named, calibrated, better than the baseline.
    assert result["ceiling_available"] is False and "ceiling" not in result["metrics"]
    assert str(version.version) == result["model"]["version"] == "1"
    assert not any(f.startswith(("risky_user", "device_changes", "distinct_ip")) for f in result["features"])
    # No coordinates and no device column in this export: those features are left out as empty.
    assert run.data.params["features_left_out_empty"] == "km_from_prev_tx,km_from_home,device_tx_count_30d,seconds_since_device_first_seen"
    m = result["metrics"]
    print({who: {k: round(v[k], 4) for k in ("roc_auc", "pr_auc", "f1", "log_loss", "ece") if v.get(k) is not None}
           for who, v in m.items()}, result["vs_baseline"], result["rows"])
    assert m["xgboost"]["positives"] >= 30, m["xgboost"]
    assert m["xgboost"]["roc_auc"] > m["baseline"]["roc_auc"], m
    assert m["xgboost"]["roc_auc"] > 0.85, m
    assert result["model"]["calibration"] == "isotonic" and m["xgboost"]["ece"] < m["xgboost_uncalibrated"]["ece"]
    # The declared columns are features of the registered version, and the model uses them: the
    # group as a whole (gain and ablation) and the stripe's indicator on its own.
    declared_names = ["x_ip_km", "x_entry_mode_is_chip", "x_entry_mode_is_swipe"]
    assert result["features"][-3:] == declared_names and json.loads(version.tags["features"])[-3:] == declared_names
    declared = result["feature_groups"]["groups"]["declared"]
    assert declared["features"] == 3 and declared["gain_share"] > 0.05 and declared["loss_without"] > 0, result["feature_groups"]
    swipe = result["features"].index("x_entry_mode_is_swipe")
    assert gains.get("x_entry_mode_is_swipe", gains.get(f"f{swipe}", 0.0)) > 0, gains
