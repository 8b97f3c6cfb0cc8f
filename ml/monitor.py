"""Model monitoring: is the champion still looking at the data it was trained on, and, where
labels have arrived, is it still right?

For one use case's champion:
- **reference** = its training period (from the run's ``lineage.json``); **recent** = the last
  ``monitor.recent_hours`` of the gold feature table's event time;
- **feature drift**: PSI over the reference's quantile bins and the two-sample KS test, per
  feature (``stats.drift``); a feature drifts when PSI > ``psi_threshold`` and KS rejects at
  ``ks_alpha``;
- **prediction drift**: the same on the champion's scores (the fraud score, the PD, or the
  trading model's top-class probability);
- **delayed-label performance** (fraud): on transactions after the training period whose
  labels are known now, precision and recall at the champion's threshold and PR-AUC; degraded
  when PR-AUC falls more than ``max_pr_auc_drop`` below the champion's own test-period PR-AUC.

Verdict: ``degraded`` if a performance check fails, else ``drifting`` if any feature or the score
drifts, else ``ok``. Every check becomes one ``ops.model_monitor`` row carrying the verdict.
Nothing here needs generator truth.
"""
from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

import stats
from lakehouse.catalog import Catalog
from lakehouse.config import Config
from lakehouse.schemas.tables import MODEL_MONITOR
from ml import registry
from ml.calibration import NONE
from ml.datasets import USE_CASES, UseCase, latest_labels_as_of

# mlflow and sklearn (ml.evaluate) are imported in the functions that use them: +2 s at import
# together, and finlake demo (reports.demo) loads this module at start. The figures choose the
# Agg backend when they draw, not on import.


class MonitorError(RuntimeError):
    """Monitoring cannot run (no champion, no gold rows): one line for the user."""


def _ts(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso).astimezone(dt.timezone.utc).replace(tzinfo=None)


def champion_context(cfg: Config, use_case: UseCase) -> dict:
    """The champion's name, version, features, threshold, training period and test metrics."""
    import mlflow

    client = registry.connect(cfg)
    name = registry.registered_name(cfg, use_case.registered_name)
    version = registry.alias_version(client, name, registry.CHAMPION)
    if version is None:
        raise MonitorError(f"{name} has no champion to monitor; train one first (jobs/train.py --use-case {use_case.name})")
    tags = version.tags
    run_id = tags.get("run_id") or version.run_id
    lineage = mlflow.artifacts.load_dict(f"runs:/{run_id}/lineage.json")
    metrics = mlflow.artifacts.load_dict(f"runs:/{run_id}/metrics.json")
    split = lineage["split"]
    return {"name": name, "version": str(version.version), "run_id": run_id, "features": json.loads(tags["features"]),
            "threshold": float(tags["threshold"]) if "threshold" in tags else None,
            "calibration": registry.load_calibration(client, name, version),
            "threshold_on": tags.get("threshold_on", "score"),
            "reference_start": _ts(split["start"]), "reference_end": _ts(split["train_end"]),
            "trained_until": _ts(split["end"]), "test_metrics": metrics.get("xgboost", {})}


def _sample(df: DataFrame, columns: list[str], n: int, seed: int = 7) -> pd.DataFrame:
    total = df.count()
    if total > n:
        df = df.sample(fraction=min(1.0, 1.2 * n / total), seed=seed).limit(n)
    return df.select(*columns).toPandas()


def _scores(booster, use_case: UseCase, frame: pd.DataFrame, features: list[str], calibration=NONE) -> np.ndarray:
    """The version's scores as it serves them (through its calibration map); a multi-class
    model's most probable class's probability."""
    if len(frame) == 0:
        return np.zeros(0)
    pred = calibration.apply(booster.inplace_predict(frame[features].astype("float64")))
    return pred.max(axis=1) if pred.ndim == 2 else pred


def _reference_scores(run_id: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The champion's own test-period labels and scores (``test_scores.csv`` of its run)."""
    import mlflow

    try:
        frame = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"runs:/{run_id}/test_scores.csv")))
    except Exception:  # an older run without the artifact: judge on the point estimate
        return None
    return frame["label"].to_numpy(), frame["xgboost"].to_numpy()


def judge_drift(reference: pd.DataFrame, recent: pd.DataFrame, columns: list[str], bins: int, psi_threshold: float,
                ks_alpha: float, min_rows: int) -> list[dict]:
    """One ``feature_psi`` and one ``feature_ks`` check per column (pure: pandas in, dicts out).
    A column drifts when both its PSI is above the threshold and KS rejects; a column that is
    constant in both samples, or too short, is ``skipped``."""
    out = []
    for col in columns:
        ref, cur = reference[col].to_numpy(dtype="float64"), recent[col].to_numpy(dtype="float64")
        ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
        if len(ref) < min_rows or len(cur) < min_rows:
            for check in ("feature_psi", "feature_ks"):
                out.append({"check": check, "feature": col, "value": None, "threshold": None, "status": "skipped",
                            "rows": int(len(cur)), "details": {"reason": f"fewer than {min_rows} rows"}})
            continue
        r = stats.drift(ref, cur, bins)
        drifts = r.psi > psi_threshold and r.ks_pvalue < ks_alpha
        status = "drifting" if drifts else "ok"
        details = {"psi": f"{r.psi:.6f}", "ks_statistic": f"{r.ks_statistic:.6f}", "ks_pvalue": f"{r.ks_pvalue:.3g}",
                   "reference_rows": str(r.reference_rows)}
        out.append({"check": "feature_psi", "feature": col, "value": r.psi, "threshold": psi_threshold, "status": status,
                    "rows": r.recent_rows, "details": details})
        out.append({"check": "feature_ks", "feature": col, "value": r.ks_pvalue, "threshold": ks_alpha, "status": status,
                    "rows": r.recent_rows, "details": details})
    return out


def _pr_auc_drop_p(y: np.ndarray, p: np.ndarray, y_ref: np.ndarray, p_ref: np.ndarray, max_drop: float,
                   n_boot: int, seed: int = 0) -> float:
    """One-sided bootstrap p that the PR-AUC drop from the reference rows to the recent ones is
    no more than ``max_drop`` (each sample resampled on its own: they are different rows)."""
    from sklearn.metrics import average_precision_score as ap

    rng = np.random.default_rng(seed)
    drops = []
    for _ in range(n_boot):
        i, j = rng.integers(0, len(y), len(y)), rng.integers(0, len(y_ref), len(y_ref))
        if y[i].sum() == 0 or y_ref[j].sum() == 0:
            continue
        drops.append(ap(y_ref[j], p_ref[j]) - ap(y[i], p[i]))
    d = np.asarray(drops)
    return float((1 + int((d <= max_drop).sum())) / (1 + len(d)))


def judge_labels(y: np.ndarray, p: np.ndarray, threshold: float, reference_pr_auc: float | None, max_drop: float,
                 min_rows: int, min_positives: int, reference: tuple[np.ndarray, np.ndarray] | None = None,
                 alpha: float | None = None, n_boot: int = 500, amount: np.ndarray | None = None,
                 on: str = "score") -> list[dict]:
    """Precision, recall and PR-AUC on the labels that arrived (pure).

    PR-AUC is degraded when it is more than ``max_drop`` below ``reference_pr_auc`` (the
    champion's test-period PR-AUC). Given the ``reference`` rows themselves (labels, scores) and
    ``alpha``, the drop must also be significant: a bootstrap of both samples gives the one-sided
    p that the true drop is within ``max_drop``, and only p < alpha degrades (a test period of a
    few dozen frauds gives a PR-AUC too noisy to judge against on its own)."""
    from ml import evaluate as ev

    y = np.asarray(y).astype(int)
    if len(y) < min_rows or y.sum() < min_positives:
        return [{"check": "pr_auc", "feature": None, "value": None, "threshold": None, "status": "skipped", "rows": int(len(y)),
                 "details": {"reason": f"{len(y)} labelled rows with {int(y.sum())} frauds; needs {min_rows} and {min_positives}"}}]
    m = ev.binary_metrics(y, p, threshold, amount, on=on)
    bound = None if reference_pr_auc is None else reference_pr_auc - max_drop
    degraded = bound is not None and m["pr_auc"] is not None and m["pr_auc"] < bound
    details = {"positives": str(m["positives"]), "reference_pr_auc": str(reference_pr_auc)}
    if degraded and reference is not None and alpha is not None:
        y_ref, p_ref = np.asarray(reference[0]).astype(int), np.asarray(reference[1], dtype=float)
        pval = _pr_auc_drop_p(y, np.asarray(p, dtype=float), y_ref, p_ref, max_drop, n_boot)
        details.update(drop_pvalue=f"{pval:.3g}", reference_rows=str(len(y_ref)), reference_positives=str(int(y_ref.sum())))
        degraded = pval < alpha
    return [
        {"check": "pr_auc", "feature": None, "value": m["pr_auc"], "threshold": bound, "status": "degraded" if degraded else "ok",
         "rows": m["rows"], "details": details},
        {"check": "precision", "feature": None, "value": m["precision"], "threshold": None, "status": "ok", "rows": m["rows"],
         "details": details},
        {"check": "recall", "feature": None, "value": m["recall"], "threshold": None, "status": "ok", "rows": m["rows"],
         "details": details},
    ]


def verdict(checks: list[dict]) -> str:
    statuses = {c["status"] for c in checks}
    return "degraded" if "degraded" in statuses else "drifting" if "drifting" in statuses else "ok"


def append_rows(spark: SparkSession, cfg: Config, rows: list[tuple]) -> None:
    """Append ``ops.model_monitor`` rows (tuples in the schema's column order)."""
    spark.createDataFrame(rows, MODEL_MONITOR).write.format("delta").mode("append").save(Catalog(cfg).spec("ops.model_monitor").location)


def monitor_use_case(spark: SparkSession, cfg: Config, name: str, run_time: dt.datetime | None = None) -> dict:
    """Run every check of one use case's champion; append them to ``ops.model_monitor``."""
    use_case = USE_CASES[name]
    catalog = Catalog(cfg)
    ctx = champion_context(cfg, use_case)
    features = ctx["features"]
    gold = spark.read.format("delta").load(catalog.spec(use_case.features_table).location)
    newest = gold.agg(F.max("event_time")).first()[0]
    if newest is None:
        raise MonitorError(f"{use_case.features_table} has no rows to monitor")
    window_end = newest
    window_start = newest - dt.timedelta(hours=float(cfg["monitor.recent_hours"]))
    n = int(cfg["monitor.sample_rows"])
    cols = ["event_id", "event_time", *features]
    reference = _sample(gold.where(F.col("event_time").between(ctx["reference_start"], ctx["reference_end"])), cols, n)
    recent = _sample(gold.where(F.col("event_time") > F.lit(window_start)), cols, n)
    bins, psi_t, alpha, min_rows = int(cfg["monitor.bins"]), float(cfg["monitor.psi_threshold"]), float(cfg["monitor.ks_alpha"]), int(cfg["monitor.min_rows"])
    # Calendar features (hour, night, weekend) follow the window's position in the day and week,
    # not the world: a 24-hour window against a training period of other hours always "drifts".
    calendar = set(cfg.get("monitor.calendar_features") or [])
    checks = judge_drift(reference, recent, [f for f in features if f not in calendar], bins, psi_t, alpha, min_rows)
    booster = registry.load_booster(ctx["name"], ctx["version"])
    scored = pd.DataFrame({"score": _scores(booster, use_case, reference, features, ctx["calibration"])}), pd.DataFrame({"score": _scores(booster, use_case, recent, features, ctx["calibration"])})
    prediction = judge_drift(scored[0], scored[1], ["score"], bins, psi_t, alpha, min_rows)
    for c in prediction:
        c["check"] = c["check"].replace("feature_", "prediction_")
        c["feature"] = None
    checks += prediction
    if use_case.kind == "binary":
        labels = spark.read.format("delta").load(catalog.spec("silver.tx_labels").location)
        after = gold.where(F.col("event_time") > F.lit(ctx["trained_until"]))
        labelled = after.join(latest_labels_as_of(labels, None), "event_id", "inner")
        extra = ["amount"] if ctx["threshold_on"] == "expected_loss" else []
        frame = _sample(labelled.withColumn("label", F.col("is_fraud").cast("int")).withColumn("amount", F.col("amount").cast("double")),
                        ["label", *extra, *features], n)
        checks += judge_labels(frame["label"].to_numpy(), _scores(booster, use_case, frame, features, ctx["calibration"]), ctx["threshold"] or 0.5,
                               ctx["test_metrics"].get("pr_auc"), float(cfg["monitor.max_pr_auc_drop"]),
                               int(cfg["monitor.min_labelled"]), int(cfg["monitor.min_frauds"]),
                               reference=_reference_scores(ctx["run_id"]), alpha=float(cfg["monitor.degrade_alpha"]),
                               amount=frame["amount"].to_numpy() if extra else None, on=ctx["threshold_on"])
    model_verdict = verdict(checks)
    now = run_time or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = [(now, name, ctx["name"], ctx["version"], ctx["reference_start"], ctx["reference_end"], window_start, window_end,
             c["check"], c["feature"], None if c["value"] is None else float(c["value"]),
             None if c["threshold"] is None else float(c["threshold"]), c["status"], model_verdict,
             None if c["rows"] is None else int(c["rows"]), {k: str(v) for k, v in (c["details"] or {}).items()})
            for c in checks]
    append_rows(spark, cfg, rows)
    return {"use_case": name, "model": ctx["name"], "version": ctx["version"], "verdict": model_verdict,
            "drifting": sorted({c["feature"] or "score" for c in checks if c["status"] == "drifting"}),
            "degraded": sorted({c["check"] for c in checks if c["status"] == "degraded"}),
            "checks": len(checks), "reference_rows": len(reference), "recent_rows": len(recent),
            "window": [str(window_start), str(window_end)]}


# ---------------------------------------------------------------------------------------------
# Report pieces (the demo's monitoring section, notebook 07)


def latest_checks(spark: SparkSession, cfg: Config) -> pd.DataFrame:
    """The checks of each use case's most recent monitoring run (``ops.model_monitor``)."""
    rows = spark.read.format("delta").load(Catalog(cfg).spec("ops.model_monitor").location)
    drift = rows.where(~F.col("check").isin("retrain", "promotion"))
    newest = F.max("run_time").over(Window.partitionBy("use_case"))
    return (drift.withColumn("_newest", newest).where(F.col("run_time") == F.col("_newest")).drop("_newest")
            .select("use_case", "model_version", "check", "feature", "value", "threshold", "status", "verdict", "rows")
            .toPandas())


def drift_table(checks: pd.DataFrame) -> pd.DataFrame:
    """One row per use case and feature (and the score): PSI, KS p-value, status; worst first."""
    psi = checks[checks["check"].isin(["feature_psi", "prediction_psi"])]
    ks = checks[checks["check"].isin(["feature_ks", "prediction_ks"])]
    key = lambda f: f.assign(feature=f["feature"].fillna("score"))[["use_case", "feature", "value", "status", "verdict", "model_version"]]
    out = key(psi).rename(columns={"value": "psi"}).merge(
        key(ks)[["use_case", "feature", "value"]].rename(columns={"value": "ks_pvalue"}), on=["use_case", "feature"], how="left")
    return out.sort_values(["use_case", "psi"], ascending=[True, False], na_position="last").reset_index(drop=True)


def psi_figure(table: pd.DataFrame, threshold: float):
    """Per-feature PSI bars of each use case, the drift threshold as a line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    cases = list(dict.fromkeys(table["use_case"]))
    fig = Figure(figsize=(9, 2.2 + 0.16 * len(table)))
    axes = fig.subplots(len(cases), 1, squeeze=False)[:, 0] if cases else []
    for ax, case in zip(axes, cases):
        t = table[(table["use_case"] == case) & table["psi"].notna()].sort_values("psi")
        colours = ["#c0392b" if s == "drifting" else "#7f8c8d" for s in t["status"]]
        ax.barh(t["feature"], t["psi"], color=colours)
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
        ax.set_title(f"{case}: PSI against the champion's training period (red: drifting)", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def label_performance_over_time(spark: SparkSession, cfg: Config, name: str, since: dt.datetime,
                                bucket_hours: float = 1.0) -> pd.DataFrame:
    """Fraud: the champion's precision and recall at its threshold per ``bucket_hours`` of event
    time, on the transactions from ``since`` on whose labels have arrived."""
    from ml import evaluate as ev

    use_case = USE_CASES[name]
    ctx = champion_context(cfg, use_case)
    catalog = Catalog(cfg)
    gold = spark.read.format("delta").load(catalog.spec(use_case.features_table).location)
    labels = spark.read.format("delta").load(catalog.spec("silver.tx_labels").location)
    frame = (gold.where(F.col("event_time") >= F.lit(since)).join(latest_labels_as_of(labels, None), "event_id", "inner")
             .select(F.col("event_time").cast("double").alias("t"), F.col("is_fraud").cast("int").alias("label"),
                     F.col("amount").cast("double").alias("amount"), *ctx["features"])
             .toPandas())
    if frame.empty:
        return pd.DataFrame(columns=["bucket_start", "rows", "frauds", "precision", "recall"])
    booster = registry.load_booster(ctx["name"], ctx["version"])
    frame["score"] = _scores(booster, use_case, frame, ctx["features"], ctx["calibration"])
    width = bucket_hours * 3600.0
    frame["bucket"] = (frame["t"] // width) * width
    out = []
    for bucket, g in frame.groupby("bucket"):
        m = ev.binary_metrics(g["label"].to_numpy(), g["score"].to_numpy(), ctx["threshold"] or 0.5, g["amount"].to_numpy(),
                              on=ctx["threshold_on"])
        out.append({"bucket_start": pd.Timestamp(bucket, unit="s"), "rows": len(g), "frauds": int(g["label"].sum()),
                    "precision": m["precision"], "recall": m["recall"]})
    return pd.DataFrame(out)


def label_figure(perf: pd.DataFrame, model: str):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots()
    for col in ("precision", "recall"):
        ax.plot(perf["bucket_start"], perf[col], marker=".", label=col)
    ax.set(ylim=(0, 1.02), title=f"{model}: precision and recall at its threshold, by hour, on labels that arrived")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def promotion_history(cfg: Config) -> pd.DataFrame:
    """Every registered version of every use case's model: when, whether it was promoted, the
    paired test's p-value and the reason (from the version's ``promotion`` tag)."""
    client = registry.connect(cfg)
    rows = []
    for name, use_case in USE_CASES.items():
        reg = registry.registered_name(cfg, use_case.registered_name)
        champion = registry.alias_version(client, reg, registry.CHAMPION)
        for v in client.search_model_versions(f"name='{reg}'"):
            promo = json.loads(v.tags.get("promotion", "{}"))
            rows.append({"use_case": name, "version": int(v.version),
                         "registered": dt.datetime.fromtimestamp(v.creation_timestamp / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                         "promoted": promo.get("promote"), "serving": champion is not None and str(champion.version) == str(v.version),
                         "metric": promo.get("metric"), "challenger": promo.get("challenger_value"),
                         "champion before": promo.get("champion_value"), "test": promo.get("test"), "p_value": promo.get("p_value"),
                         "reason": promo.get("reason")})
    return pd.DataFrame(rows).sort_values(["use_case", "version"]).reset_index(drop=True) if rows else pd.DataFrame(rows)
