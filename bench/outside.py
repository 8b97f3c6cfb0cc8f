"""finlake against a plain scikit-learn model on transactions other simulators made, in two shapes.

- ``handbook``: made the way the public fraud-detection handbook's simulator makes it (customers
  and terminals on a grid, each customer paying at terminals near them; frauds from large
  amounts, compromised terminals whose every payment for 28 days is fraud, and compromised
  customers a third of whose payments for 14 days are fraud at five times the amount; labels a
  week late). The reference is scikit-learn's random forest on the handbook's own features
  (customer spending windows, terminal risk with the label delay, amount, weekend and night).
- ``billing``: an issuer's export with other columns and other frauds: terminal coordinates,
  each card's billing address (two columns finlake has no field for, declared as a distance
  feature), string ids, ISO times, a chargeback date per fraud (labels 1-30 days late, legit
  payments labelled after 30 days); frauds from stolen card numbers used online far from home,
  skimmed cards used at terminals in another city, and compromised terminals. The reference is
  scikit-learn's HistGradientBoosting on plain features of the export (amount, hour, channel,
  billing-to-terminal distance, the card's recent count and mean amount, the terminal's fraud
  share among payments charged back before the row).

Each export goes through finlake as a user's would: the loader (``--to bronze``), the pipeline,
fraud training with no truth table. Both models are judged on the same test transactions
(finlake's test period), overall and per fraud kind.

    python -m bench.outside [--shapes handbook,billing] [--seeds 0,1,2] [--customers 600] [--terminals 1200] [--days 90]

Each shape is drawn once per seed (a test period held 106-340 frauds in the recorded draws, and
one draw's AUCs moved by 0.01-0.05 from draw to draw) and each draw is judged on its own and in
the mean.
Writes bench/results/outside.json and prints the comparison; exits 1 when, in the mean over the
draws of a shape, finlake's PR-AUC is below the reference's or its ROC-AUC below its own
baseline's (the draws that fall short are printed either way).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

SCENARIOS = {0: "legitimate", 1: "large_amount", 2: "compromised_terminal", 3: "compromised_customer"}
LABEL_DELAY_DAYS = 7


def payment_times(rng, start: float, days: int, per_day, near, mean_s: float, sd_s: float):
    """(customer, time) of each everyday payment: per customer with a terminal near them and day,
    a Poisson count of payments at a normal time of day (those falling outside the day dropped).
    The caller draws each payment's other values from ``rng`` between the yields."""
    for c in range(len(per_day)):
        if len(near[c]) == 0:
            continue
        for d in range(days):
            for _ in range(rng.poisson(per_day[c])):
                secs = rng.normal(mean_s, sd_s)
                if 0 < secs < 86400:
                    yield c, start + d * 86400 + secs


def simulate(customers: int, terminals: int, days: int, seed: int = 0, end: float | None = None) -> pd.DataFrame:
    """The export: TRANSACTION_ID, TX_DATETIME (text), CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT,
    TX_FRAUD, TX_FRAUD_SCENARIO. Fraud rates per terminal and customer follow the handbook's
    (2 terminals and 3 customers compromised a day per 10,000 terminals / 5,000 customers)."""
    rng = np.random.default_rng(seed)
    end = end if end is not None else (time.time() // 86400 - 1) * 86400
    start = end - days * 86400
    cxy, txy = rng.uniform(0, 100, (customers, 2)), rng.uniform(0, 100, (terminals, 2))
    mean = rng.uniform(5, 100, customers)
    per_day = rng.uniform(0, 4, customers)
    near = [np.flatnonzero(np.hypot(*(txy - cxy[c]).T) < 5) for c in range(customers)]
    rows = []
    for c, t in payment_times(rng, start, days, per_day, near, 43200, 20000):
        amount = rng.normal(mean[c], mean[c] / 2)
        if amount < 0:
            amount = rng.uniform(0, 2 * mean[c])
        rows.append((t, c, int(rng.choice(near[c])), round(amount, 2)))
    tx = pd.DataFrame(rows, columns=["t", "c", "term", "amount"]).sort_values("t").reset_index(drop=True)
    tx["fraud"], tx["scenario"] = 0, 0
    big = tx["amount"] > 220
    tx.loc[big, ["fraud", "scenario"]] = [1, 1]
    day = ((tx["t"] - start) // 86400).astype(int)
    for d in range(days):
        for term in rng.choice(terminals, rng.poisson(2 * terminals / 10_000), replace=False):
            hit = (tx["term"] == term) & (day >= d) & (day < d + 28)
            tx.loc[hit, ["fraud", "scenario"]] = [1, 2]
        for c in rng.choice(customers, rng.poisson(3 * customers / 5_000), replace=False):
            window = np.flatnonzero(((tx["c"] == c) & (day >= d) & (day < d + 14)).to_numpy())
            chosen = window[rng.uniform(size=len(window)) < 1 / 3]
            tx.loc[chosen, "amount"] = (tx.loc[chosen, "amount"] * 5).round(2)
            tx.loc[chosen, ["fraud", "scenario"]] = [1, 3]
    return pd.DataFrame({
        "TRANSACTION_ID": np.arange(len(tx)),
        "TX_DATETIME": pd.to_datetime(tx["t"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S"),
        "CUSTOMER_ID": tx["c"].astype(int), "TERMINAL_ID": tx["term"].astype(int), "TX_AMOUNT": tx["amount"],
        "TX_FRAUD": tx["fraud"].astype(int), "TX_FRAUD_SCENARIO": tx["scenario"].astype(int),
    })


def handbook_features(export: pd.DataFrame, delay_days: int = LABEL_DELAY_DAYS) -> pd.DataFrame:
    """The handbook's features, from the export alone: amount; weekend; night (hour <= 6);
    per customer the count and mean amount over 1, 7, 30 days up to the transaction; per
    terminal the count and fraud share over 1, 7, 30 days ending ``delay_days`` before it
    (labels are known a week late)."""
    df = export.copy()
    df["ts"] = pd.to_datetime(df["TX_DATETIME"])
    df = df.sort_values("ts").reset_index(drop=True)
    feats = pd.DataFrame({"TX_AMOUNT": df["TX_AMOUNT"], "WEEKEND": (df["ts"].dt.weekday >= 5).astype(int),
                          "NIGHT": (df["ts"].dt.hour <= 6).astype(int)}, index=df.index)
    t = df["ts"].astype("int64").to_numpy() / 1e9
    day = 86400.0

    def window_sums(key: str, values: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the count and sum of ``values`` over its key's rows timed in (t - lo, t - hi]."""
        count, total = np.zeros(len(df)), np.zeros(len(df))
        for idx in df.groupby(key).indices.values():   # row positions, in time order
            tk, ck = t[idx], np.concatenate([[0.0], np.cumsum(values[idx])])
            a, b = np.searchsorted(tk, tk - lo, "right"), np.searchsorted(tk, tk - hi, "right")
            count[idx], total[idx] = b - a, ck[b] - ck[a]
        return count, total

    amount, fraud = df["TX_AMOUNT"].to_numpy(float), df["TX_FRAUD"].to_numpy(float)
    for w in (1, 7, 30):
        n, s = window_sums("CUSTOMER_ID", amount, w * day, 0.0)
        feats[f"CUSTOMER_NB_TX_{w}D"], feats[f"CUSTOMER_AVG_AMOUNT_{w}D"] = n, s / n
        n, f = window_sums("TERMINAL_ID", fraud, (delay_days + w) * day, delay_days * day)
        feats[f"TERMINAL_NB_TX_{w}D"], feats[f"TERMINAL_RISK_{w}D"] = n, np.where(n > 0, f / np.maximum(n, 1), 0.0)
    feats["TRANSACTION_ID"] = df["TRANSACTION_ID"]
    feats["t"] = df["ts"].astype("int64") / 1e9
    return feats


def auc_by_scenario(y: np.ndarray, score: np.ndarray, scenario: np.ndarray, names: dict) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    out = {"all": {"roc_auc": float(roc_auc_score(y, score)), "pr_auc": float(average_precision_score(y, score)),
                   "frauds": int(y.sum())}}
    for code, name in names.items():
        if code == 0:
            continue
        keep = (scenario == 0) | (scenario == code)
        if y[keep].sum() >= 5:
            out[name] = {"roc_auc": float(roc_auc_score(y[keep], score[keep])), "frauds": int(y[keep].sum())}
    return out


def handbook_mapping() -> dict:
    """The handbook export's column mapping (the example's, for these columns and a 7-day label delay)."""
    return {"description": "the handbook simulator's export", "stream": "transactions", "format": "csv",
            "options": {"header": "true"}, "time_format": "yyyy-MM-dd HH:mm:ss",
            "columns": {"event_id": "TRANSACTION_ID", "event_time": "TX_DATETIME", "card_pan": "concat('CUST-', CUSTOMER_ID)",
                        "customer_id": "CUSTOMER_ID", "merchant_id": "TERMINAL_ID", "terminal_id": "TERMINAL_ID",
                        "amount": "TX_AMOUNT", "channel": "'card_present'"},
            "defaults": {"currency": "EUR"}, "extras": ["TX_FRAUD_SCENARIO"],
            "labels": {"is_fraud": "TX_FRAUD", "delay": f"{LABEL_DELAY_DAYS}d"}}


def handbook_reference(export: pd.DataFrame, train_end: float) -> tuple[pd.DataFrame, object]:
    """The handbook's features of every row and a random forest fitted on those before ``train_end``."""
    from sklearn.ensemble import RandomForestClassifier

    hb = handbook_features(export).merge(export[["TRANSACTION_ID", "TX_FRAUD"]], on="TRANSACTION_ID")
    cols = [c for c in hb.columns if c not in ("TRANSACTION_ID", "t", "TX_FRAUD")]
    train = hb[hb["t"] < train_end]
    rf = RandomForestClassifier(n_estimators=100, max_depth=20, n_jobs=2, random_state=0).fit(train[cols], train["TX_FRAUD"])
    return pd.DataFrame({"id": hb["TRANSACTION_ID"].astype(str), "reference": rf.predict_proba(hb[cols])[:, 1]}), rf


# ---------------------------------------------------------------------------------------------
# The second shape: an issuer's export with billing addresses and chargeback dates

BILLING_SCENARIOS = {0: "legitimate", 1: "stolen_card_online", 2: "skimmed_card_far", 3: "compromised_terminal"}


def simulate_billing(customers: int, terminals: int, days: int, seed: int = 0, end: float | None = None) -> pd.DataFrame:
    """TX_REF (text), TX_TS (ISO 8601), CARD_REF, CUSTOMER_REF, TERMINAL_REF, TERMINAL_LAT/LON,
    BILL_LAT/LON, AMOUNT_CENTS, ENTRY (CHIP / ECOM), FRAUD, CHARGEBACK_TS (when the label came:
    1-30 days after a fraud, 30 days after a legitimate payment), KIND. Places in degrees around
    a 4 x 6 degree region; each customer pays in person at terminals within ~15 km of home and
    online at merchants anywhere."""
    rng = np.random.default_rng(seed + 101)
    end = end if end is not None else (time.time() // 86400 - 1) * 86400
    start = end - days * 86400
    home = np.c_[rng.uniform(44, 48, customers), rng.uniform(0, 6, customers)]
    place = np.c_[rng.uniform(44, 48, terminals), rng.uniform(0, 6, terminals)]
    online_t = rng.choice(terminals, max(1, terminals // 10), replace=False)
    near = [np.flatnonzero(np.hypot(*(place - home[c]).T) < 0.15) for c in range(customers)]
    mean, per_day, online = rng.uniform(8, 90, customers), rng.uniform(0.5, 3, customers), rng.uniform(0.05, 0.3, customers)
    rows = []
    for c, t in payment_times(rng, start, days, per_day, near, 50000, 15000):
        ecom = rng.uniform() < online[c]
        term = int(rng.choice(online_t)) if ecom else int(rng.choice(near[c]))
        rows.append((t, c, term, max(0.5, rng.normal(mean[c], mean[c] / 3)), ecom, 0))
    tx = pd.DataFrame(rows, columns=["t", "c", "term", "amount", "ecom", "kind"]).sort_values("t").reset_index(drop=True)
    day = ((tx["t"] - start) // 86400).astype(int)
    extra = []
    for d in range(2, days):
        # Stolen card numbers: a few online payments far from home over two days, larger than usual.
        for c in rng.choice(customers, rng.poisson(2 * customers / 1000), replace=False):
            for k in range(int(rng.integers(2, 6))):
                extra.append((start + d * 86400 + rng.uniform(0, 2 * 86400), c, int(rng.choice(online_t)),
                              rng.uniform(1.5, 4) * mean[c], True, 1))
        # Skimmed cards: a cloned card used in person in another city.
        for c in rng.choice(customers, rng.poisson(1 * customers / 1000), replace=False):
            far = np.flatnonzero(np.hypot(*(place - home[c]).T) > 1.5)
            for k in range(int(rng.integers(2, 5))):
                extra.append((start + d * 86400 + rng.uniform(0, 86400), c, int(rng.choice(far)), rng.uniform(1, 3) * mean[c], False, 2))
        # Compromised terminals: every in-person payment for 14 days is fraud.
        for term in rng.choice(terminals, rng.poisson(terminals / 2000), replace=False):
            hit = (tx["term"] == term) & (~tx["ecom"]) & (day >= d) & (day < d + 14)
            tx.loc[hit, "kind"] = 3
    tx = pd.concat([tx, pd.DataFrame(extra, columns=tx.columns)], ignore_index=True)
    tx = tx[tx["t"] < end].sort_values("t").reset_index(drop=True)
    fraud = tx["kind"] > 0
    delay = np.where(fraud, rng.uniform(1, 30, len(tx)), 30.0) * 86400
    iso = lambda secs: pd.to_datetime(secs, unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    return pd.DataFrame({
        "TX_REF": [f"tx-{seed}-{i:08d}" for i in range(len(tx))], "TX_TS": iso(tx["t"]),
        "CARD_REF": [f"card-{c}" for c in tx["c"]], "CUSTOMER_REF": [f"cust-{c}" for c in tx["c"]],
        "TERMINAL_REF": [f"term-{t}" for t in tx["term"]],
        "TERMINAL_LAT": place[tx["term"], 0].round(5), "TERMINAL_LON": place[tx["term"], 1].round(5),
        "BILL_LAT": home[tx["c"], 0].round(5), "BILL_LON": home[tx["c"], 1].round(5),
        "AMOUNT_CENTS": (tx["amount"] * 100).round().astype(int), "ENTRY": np.where(tx["ecom"], "ECOM", "CHIP"),
        "FRAUD": fraud.astype(int), "CHARGEBACK_TS": iso(tx["t"] + delay), "KIND": tx["kind"].astype(int),
    })


def billing_mapping() -> dict:
    return {"description": "an issuer's export with billing addresses and chargeback dates", "stream": "transactions",
            "format": "csv", "options": {"header": "true"},
            "columns": {"event_id": "TX_REF", "event_time": "TX_TS", "card_pan": "CARD_REF", "customer_id": "CUSTOMER_REF",
                        "merchant_id": "TERMINAL_REF", "terminal_id": "TERMINAL_REF", "amount": "AMOUNT_CENTS / 100",
                        "channel": "ENTRY", "lat": "TERMINAL_LAT", "lon": "TERMINAL_LON"},
            "values": {"channel": {"CHIP": "card_present", "ECOM": "ecommerce"}},
            "defaults": {"currency": "EUR"}, "extras": ["BILL_LAT", "BILL_LON", "KIND"],
            "labels": {"is_fraud": "FRAUD", "labelled_at": "CHARGEBACK_TS"}}


def billing_reference(export: pd.DataFrame, train_end: float) -> tuple[pd.DataFrame, object]:
    """Plain features of the export and a HistGradientBoosting fitted on the rows before ``train_end``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    df = export.copy()
    df["t"] = (pd.to_datetime(df["TX_TS"], utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    df["cb"] = (pd.to_datetime(df["CHARGEBACK_TS"], utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    df = df.sort_values("t").reset_index(drop=True)
    lat1, lon1, lat2, lon2 = (np.radians(df[c].to_numpy(float)) for c in ("BILL_LAT", "BILL_LON", "TERMINAL_LAT", "TERMINAL_LON"))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    f = pd.DataFrame({"amount": df["AMOUNT_CENTS"] / 100, "hour": pd.to_datetime(df["TX_TS"]).dt.hour,
                      "ecom": (df["ENTRY"] == "ECOM").astype(int), "km_billing": 2 * 6371 * np.arcsin(np.sqrt(a))})
    t, amount = df["t"].to_numpy(), df["AMOUNT_CENTS"].to_numpy(float) / 100
    for key, lo, name in (("CARD_REF", 86400, "card_1d"), ("CARD_REF", 30 * 86400, "card_30d")):
        n, mean = np.zeros(len(df)), np.full(len(df), np.nan)
        for idx in df.groupby(key).indices.values():
            tk, ck = t[idx], np.r_[0.0, np.cumsum(amount[idx])]
            a_, b_ = np.searchsorted(tk, tk - lo, "left"), np.arange(len(idx))
            n[idx] = b_ - a_
            mean[idx] = np.where(b_ > a_, (ck[b_] - ck[a_]) / np.maximum(b_ - a_, 1), np.nan)
        f[f"{name}_count"], f[f"{name}_mean"] = n, mean
    f["amount_vs_card"] = f["amount"] / f["card_30d_mean"]
    # The terminal's fraud share among its payments charged back in the 7 / 30 days before the row.
    cb, fraud = df["cb"].to_numpy(), df["FRAUD"].to_numpy()
    for w in (7, 30):
        share = np.full(len(df), np.nan)
        for idx in df.groupby("TERMINAL_REF").indices.values():
            order = np.argsort(cb[idx])
            times, frauds = cb[idx][order], np.r_[0, np.cumsum(fraud[idx][order])]
            lo_, hi_ = np.searchsorted(times, t[idx] - w * 86400, "left"), np.searchsorted(times, t[idx], "left")
            share[idx] = np.where(hi_ > lo_, (frauds[hi_] - frauds[lo_]) / np.maximum(hi_ - lo_, 1), np.nan)
        f[f"terminal_share_{w}d"] = share
    train = t < train_end
    model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=0).fit(f[train], fraud[train])
    return pd.DataFrame({"id": df["TX_REF"].astype(str), "reference": model.predict_proba(f)[:, 1]}), model


@dataclass(frozen=True)
class Shape:
    simulate: Callable
    mapping: Callable[[], dict]
    reference: Callable          # (export, train_end) -> (id, reference score) frame, model
    reference_name: str
    id_col: str
    label_col: str
    kind_col: str
    kinds: dict
    overrides: tuple[str, ...] = ()


SHAPES = {
    "handbook": Shape(simulate, handbook_mapping, handbook_reference, "sklearn_random_forest", "TRANSACTION_ID", "TX_FRAUD",
                      "TX_FRAUD_SCENARIO", SCENARIOS),
    "billing": Shape(simulate_billing, billing_mapping, billing_reference, "sklearn_hist_gradient_boosting", "TX_REF", "FRAUD",
                     "KIND", BILLING_SCENARIOS,
                     ("features.transactions.distances={billing_to_terminal: [[BILL_LAT, BILL_LON], [lat, lon]]}",)),
}


def run(shape_name: str, customers: int, terminals: int, days: int, seed: int, home: Path) -> dict:
    import yaml
    from pyspark.sql import functions as F

    from jobs import load, stream
    from lakehouse.catalog import Catalog
    from lakehouse.config import load_config
    from lakehouse.session import build_session
    from ml import registry
    from ml.train import train_use_case

    shape = SHAPES[shape_name]
    timings = {}
    t0 = time.perf_counter()
    export = shape.simulate(customers, terminals, days, seed)
    folder = home / "export"
    folder.mkdir(parents=True, exist_ok=True)
    export.to_csv(folder / "transactions.csv", index=False)
    (home / "mapping.yaml").write_text(yaml.safe_dump(shape.mapping(), sort_keys=False))
    timings["simulate_s"] = time.perf_counter() - t0
    cfg = load_config("local", ["security.pan_hmac_key_missing=generate", "ml.features.fraud.drop_groups=[user_events]",
                                *shape.overrides], home=home)
    spark = build_session(cfg, app_name=f"finlake-bench-outside-{shape_name}")
    Catalog(cfg).register(spark)
    t0 = time.perf_counter()
    load.run(spark, cfg, load.build_parser().parse_args(["--mapping", str(home / "mapping.yaml"), "--source", str(folder),
                                                         "--to", "bronze"]))
    stream.run(spark, cfg, argparse.Namespace(streams="transactions,tx_labels", layers="silver,gold", available_now=True, timeout=None))
    timings["load_and_pipeline_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = train_use_case(spark, cfg, "fraud")
    timings["finlake_train_s"] = time.perf_counter() - t0

    # finlake's scores on its test period, from the registered champion (raw scores: calibration keeps the order).
    client = registry.connect(cfg)
    name = registry.registered_name(cfg, "fraud")
    version = registry.alias_version(client, name, registry.CHAMPION)
    booster = registry.load_booster(name, str(version.version))
    features = json.loads(version.tags["features"])
    split = result["split"]
    ts = lambda iso: dt.datetime.fromisoformat(iso).timestamp()  # noqa: E731
    train_end, val_end, embargo = ts(split["train_end"]), ts(split["validation_end"]), float(split["embargo_s"])
    gold = spark.read.format("delta").load(Catalog(cfg).spec("gold.card_features").location)
    test = gold.where(F.col("event_time").cast("double") >= val_end).select("event_id", *features).toPandas()
    test["finlake"] = booster.inplace_predict(test[features].astype("float64"))
    test["id"] = test["event_id"].astype(str)

    # The plain model, trained on finlake's training period, judged on the same test transactions.
    t0 = time.perf_counter()
    scored, _ = shape.reference(export, train_end - embargo)
    truth = pd.DataFrame({"id": export[shape.id_col].astype(str), "y": export[shape.label_col].astype(int),
                          "kind": export[shape.kind_col].astype(int)})
    judged = test[["id", "finlake"]].merge(scored, on="id").merge(truth, on="id")
    timings["reference_s"] = time.perf_counter() - t0
    y, kind = judged["y"].to_numpy(), judged["kind"].to_numpy()
    return {
        "data": {"customers": customers, "terminals": terminals, "days": days, "seed": seed, "transactions": len(export),
                 "frauds": int(export[shape.label_col].sum()),
                 "frauds_by_kind": {shape.kinds[k]: int(v) for k, v in export.loc[export[shape.label_col] == 1, shape.kind_col].value_counts().items()}},
        "test_rows": len(judged),
        "finlake": {**auc_by_scenario(y, judged["finlake"].to_numpy(), kind, shape.kinds), "model": f"{name} v{version.version}",
                    "features": len(features),
                    "registered_metrics": {k: result["metrics"]["xgboost"].get(k) for k in ("roc_auc", "pr_auc", "log_loss", "ece")},
                    "baseline_roc_auc": result["metrics"]["baseline"]["roc_auc"], "fitted": result["fitted"],
                    "early_stopping": result["early_stopping"], "baseline_on_validation": result["baseline_on_validation"],
                    "feature_groups": result["feature_groups"]},
        "reference": {"model": shape.reference_name, **auc_by_scenario(y, judged["reference"].to_numpy(), kind, shape.kinds)},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }


def summary(draws: list[dict]) -> dict:
    """The mean over a shape's draws of what the judgement compares, and the draws that fall short."""
    mean = lambda f: round(float(np.mean([f(d) for d in draws])), 4)  # noqa: E731
    out = {"draws": len(draws),
           "finlake": {"roc_auc": mean(lambda d: d["finlake"]["all"]["roc_auc"]), "pr_auc": mean(lambda d: d["finlake"]["all"]["pr_auc"])},
           "baseline_roc_auc": mean(lambda d: d["finlake"]["baseline_roc_auc"]),
           "reference": {"roc_auc": mean(lambda d: d["reference"]["all"]["roc_auc"]), "pr_auc": mean(lambda d: d["reference"]["all"]["pr_auc"])}}
    out["short"] = [f"seed {d['data']['seed']}: " + "; ".join(s) for d in draws if (s := shortfalls(d["finlake"]["all"]["pr_auc"],
                    d["reference"]["all"]["pr_auc"], d["finlake"]["all"]["roc_auc"], d["finlake"]["baseline_roc_auc"]))]
    return out


def shortfalls(pr: float, ref_pr: float, roc: float, base_roc: float) -> list[str]:
    out = []
    if pr < ref_pr:
        out.append(f"PR-AUC {pr:.3f} below the reference's {ref_pr:.3f}")
    if roc < base_roc:
        out.append(f"ROC-AUC {roc:.3f} below its own baseline's {base_roc:.3f}")
    return out


def print_draw(shape: str, r: dict) -> None:
    """One draw's comparison: overall and per fraud kind, PR-AUC, the baseline, the feature groups."""
    f, ref = r["finlake"], r["reference"]
    print(f"{shape}, seed {r['data']['seed']}: {r['data']['transactions']:,} transactions, {r['data']['frauds']:,} frauds; "
          f"test {r['test_rows']:,} rows, {f['all']['frauds']} frauds")
    for part in [k for k in f if isinstance(f[k], dict) and "roc_auc" in f[k] and k != "registered_metrics"]:
        print(f"  {part:22s} ROC-AUC finlake {f[part]['roc_auc']:.3f}   {ref['model']} {ref.get(part, {}).get('roc_auc', float('nan')):.3f}")
    print(f"  PR-AUC finlake {f['all']['pr_auc']:.3f}   {ref['model']} {ref['all']['pr_auc']:.3f}; "
          f"finlake's own logistic baseline ROC-AUC {f['baseline_roc_auc']:.3f}")
    groups = f["feature_groups"]["groups"]
    print("  feature groups (share of gain / validation " + f["feature_groups"]["metric"] + " lost without): " + ", ".join(
        f"{g} {v['gain_share']:.2f}/{v.get('loss_without', float('nan')):+.3f}" for g, v in groups.items()))


def seeds_arg(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be whole numbers separated by commas, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct whole numbers separated by commas, got {text!r}")
    return seeds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default="handbook,billing", help="comma-separated: " + ", ".join(SHAPES))
    p.add_argument("--seeds", type=seeds_arg, default=[0, 1, 2], help="one draw of each shape per seed (default 0,1,2)")
    p.add_argument("--customers", type=int, default=600)
    p.add_argument("--terminals", type=int, default=1200)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--out", default="bench/results/outside.json")
    args = p.parse_args(argv)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or not shapes:
        p.error(f"unknown shape '{unknown[0] if unknown else args.shapes}' (known: {', '.join(SHAPES)})")
    base = Path(os.environ.get("FINLAKE_HOME", Path.home() / ".finlake")) / "bench_outside"
    homes = {(shape, seed): base / f"{shape}-{seed}" for shape in shapes for seed in args.seeds}
    taken = [str(h) for h in homes.values() if h.exists()]
    if taken:
        p.error(f"{taken[0]} exists from an earlier run; remove it first")
    out = {"shapes": {}, "seeds": args.seeds, "machine": {"cpus": os.cpu_count()}}
    short = []
    for shape in shapes:
        draws = []
        for seed in args.seeds:
            draws.append(run(shape, args.customers, args.terminals, args.days, seed, homes[shape, seed]))
            print_draw(shape, draws[-1])
        s = summary(draws)
        out["shapes"][shape] = {"summary": s, "draws": draws}
        print(f"{shape}, mean of {len(draws)} draws: PR-AUC finlake {s['finlake']['pr_auc']:.3f}   reference {s['reference']['pr_auc']:.3f}; "
              f"ROC-AUC finlake {s['finlake']['roc_auc']:.3f}   its own baseline {s['baseline_roc_auc']:.3f}"
              + (f"; draws short: {' | '.join(s['short'])}" if s["short"] else ""))
        short += [f"{shape}: {m} (mean of {len(draws)} draws)" for m in shortfalls(s["finlake"]["pr_auc"], s["reference"]["pr_auc"],
                                                                               s["finlake"]["roc_auc"], s["baseline_roc_auc"])]
    out["measured_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    Path(args.out).write_text(json.dumps(out, indent=1))
    if short:
        print("finlake: " + "; ".join(short))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
