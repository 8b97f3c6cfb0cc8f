"""finlake against a plain scikit-learn model on transactions another simulator made.

The data is made the way the public fraud-detection handbook's simulator makes it (customers
and terminals on a grid, each customer paying at terminals near them; frauds from large
amounts, compromised terminals whose every payment for 28 days is fraud, and compromised
customers a third of whose payments for 14 days are fraud at five times the amount). It goes
through finlake as a user's export would: the loader (``--to bronze``), the pipeline, and
fraud training with no truth table. The plain model is scikit-learn's random forest on the
handbook's own features, computed here in pandas straight from the export: customer spending
windows, terminal risk with the label delay, amount, weekend and night. Both are judged on
the same test transactions (finlake's test period), overall and per fraud scenario.

    python -m bench.outside [--customers 600] [--terminals 1200] [--days 90]

Writes bench/results/outside.json and prints the comparison.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

SCENARIOS = {0: "legitimate", 1: "large_amount", 2: "compromised_terminal", 3: "compromised_customer"}
LABEL_DELAY_DAYS = 7


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
    for c in range(customers):
        if len(near[c]) == 0:
            continue
        for d in range(days):
            for _ in range(rng.poisson(per_day[c])):
                secs = rng.normal(43200, 20000)
                if not 0 < secs < 86400:
                    continue
                amount = rng.normal(mean[c], mean[c] / 2)
                if amount < 0:
                    amount = rng.uniform(0, 2 * mean[c])
                rows.append((start + d * 86400 + secs, c, int(rng.choice(near[c])), round(amount, 2)))
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


def auc_by_scenario(y: np.ndarray, score: np.ndarray, scenario: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    out = {"all": {"roc_auc": float(roc_auc_score(y, score)), "pr_auc": float(average_precision_score(y, score)),
                   "frauds": int(y.sum())}}
    for code, name in SCENARIOS.items():
        if code == 0:
            continue
        keep = (scenario == 0) | (scenario == code)
        if y[keep].sum() >= 5:
            out[name] = {"roc_auc": float(roc_auc_score(y[keep], score[keep])), "frauds": int(y[keep].sum())}
    return out


def mapping(path: Path) -> Path:
    """The export's column mapping (the example's, for these columns and a 7-day label delay)."""
    import yaml

    m = {"description": "the handbook simulator's export", "stream": "transactions", "format": "csv",
         "options": {"header": "true"}, "time_format": "yyyy-MM-dd HH:mm:ss",
         "columns": {"event_id": "TRANSACTION_ID", "event_time": "TX_DATETIME", "card_pan": "concat('CUST-', CUSTOMER_ID)",
                     "customer_id": "CUSTOMER_ID", "merchant_id": "TERMINAL_ID", "terminal_id": "TERMINAL_ID",
                     "amount": "TX_AMOUNT", "channel": "'card_present'"},
         "defaults": {"currency": "EUR"}, "extras": ["TX_FRAUD_SCENARIO"],
         "labels": {"is_fraud": "TX_FRAUD", "delay": f"{LABEL_DELAY_DAYS}d"}}
    path.write_text(yaml.safe_dump(m, sort_keys=False))
    return path


def run(customers: int, terminals: int, days: int, seed: int, home: Path) -> dict:
    from pyspark.sql import functions as F
    from sklearn.ensemble import RandomForestClassifier

    from jobs import load, stream
    from lakehouse.catalog import Catalog
    from lakehouse.config import load_config
    from lakehouse.session import build_session
    from ml import registry
    from ml.train import train_use_case

    timings = {}
    t0 = time.perf_counter()
    export = simulate(customers, terminals, days, seed)
    folder = home / "export"
    folder.mkdir(parents=True, exist_ok=True)
    export.to_csv(folder / "transactions.csv", index=False)
    timings["simulate_s"] = time.perf_counter() - t0
    cfg = load_config("local", ["security.pan_hmac_key_missing=generate", "ml.features.fraud.drop_groups=[user_events]"], home=home)
    spark = build_session(cfg, app_name="finlake-bench-outside")
    Catalog(cfg).register(spark)
    t0 = time.perf_counter()
    load.run(spark, cfg, load.build_parser().parse_args(["--mapping", str(mapping(home / "mapping.yaml")), "--source", str(folder),
                                                         "--to", "bronze"]))
    stream.run(spark, cfg, argparse.Namespace(streams="transactions,tx_labels", layers="silver,gold", available_now=True, timeout=None))
    timings["load_and_pipeline_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = train_use_case(spark, cfg, "fraud")
    timings["finlake_train_s"] = time.perf_counter() - t0

    # finlake's scores on its test period, from the registered champion.
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
    test["TRANSACTION_ID"] = test["event_id"].astype(int)

    # The plain model: a random forest on the handbook's features, trained on finlake's
    # training period, judged on the same test transactions.
    t0 = time.perf_counter()
    hb = handbook_features(export).merge(export[["TRANSACTION_ID", "TX_FRAUD", "TX_FRAUD_SCENARIO"]], on="TRANSACTION_ID")
    cols = [c for c in hb.columns if c not in ("TRANSACTION_ID", "t", "TX_FRAUD", "TX_FRAUD_SCENARIO")]
    train = hb[hb["t"] < train_end - embargo]
    rf = RandomForestClassifier(n_estimators=100, max_depth=20, n_jobs=2, random_state=0).fit(train[cols], train["TX_FRAUD"])
    judged = test[["TRANSACTION_ID", "finlake"]].merge(hb, on="TRANSACTION_ID")
    judged["sklearn"] = rf.predict_proba(judged[cols])[:, 1]
    timings["sklearn_s"] = time.perf_counter() - t0
    y, scen = judged["TX_FRAUD"].to_numpy(), judged["TX_FRAUD_SCENARIO"].to_numpy()
    return {
        "data": {"customers": customers, "terminals": terminals, "days": days, "seed": seed, "transactions": len(export),
                 "frauds": int(export["TX_FRAUD"].sum()),
                 "frauds_by_scenario": {SCENARIOS[k]: int(v) for k, v in export.loc[export["TX_FRAUD"] == 1, "TX_FRAUD_SCENARIO"].value_counts().items()}},
        "test_rows": len(judged),
        "finlake": {**auc_by_scenario(y, judged["finlake"].to_numpy(), scen), "model": f"{name} v{version.version}",
                    "registered_metrics": {k: result["metrics"]["xgboost"].get(k) for k in ("roc_auc", "pr_auc", "log_loss", "ece")},
                    "baseline_roc_auc": result["metrics"]["baseline"]["roc_auc"], "fitted": result["fitted"],
                    "early_stopping": result["early_stopping"], "baseline_on_validation": result["baseline_on_validation"],
                    "feature_groups": result["feature_groups"]},
        "sklearn_random_forest": auc_by_scenario(y, judged["sklearn"].to_numpy(), scen),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "machine": {"cpus": os.cpu_count()},
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=600)
    p.add_argument("--terminals", type=int, default=1200)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench/results/outside.json")
    args = p.parse_args(argv)
    home = Path(os.environ.get("FINLAKE_HOME", Path.home() / ".finlake")) / "bench_outside"
    if home.exists():
        raise SystemExit(f"finlake: error: {home} exists from an earlier run; remove it first")
    out = run(args.customers, args.terminals, args.days, args.seed, home)
    Path(args.out).write_text(json.dumps(out, indent=1))
    f, s = out["finlake"], out["sklearn_random_forest"]
    print(f"outside data: {out['data']['transactions']:,} transactions, {out['data']['frauds']:,} frauds; test {out['test_rows']:,} rows, "
          f"{f['all']['frauds']} frauds")
    for part in ("all", *[n for n in SCENARIOS.values() if n in f]):
        print(f"  {part:22s} ROC-AUC finlake {f[part]['roc_auc']:.3f}   scikit-learn RF {s.get(part, {}).get('roc_auc', float('nan')):.3f}")
    print(f"  PR-AUC finlake {f['all']['pr_auc']:.3f}   scikit-learn RF {s['all']['pr_auc']:.3f}")
    print(f"  finlake's own logistic baseline: ROC-AUC {f['baseline_roc_auc']:.3f}")
    groups = f["feature_groups"]["groups"]
    print("  feature groups (share of gain / validation " + f["feature_groups"]["metric"] + " lost without): " + ", ".join(
        f"{g} {v['gain_share']:.2f}/{v.get('loss_without', float('nan')):+.3f}" for g, v in groups.items()))
    if f["all"]["pr_auc"] < s["all"]["pr_auc"]:
        print(f"finlake: finlake's PR-AUC {f['all']['pr_auc']:.3f} is below the plain scikit-learn model's {s['all']['pr_auc']:.3f}")
        return 1
    if f["all"]["roc_auc"] < f["baseline_roc_auc"]:
        print(f"finlake: finlake's ROC-AUC {f['all']['roc_auc']:.3f} is below its own baseline's {f['baseline_roc_auc']:.3f}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
