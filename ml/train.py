"""Train -> validate -> promote, for one use case.

1. Build the labelled rows from gold point in time, pinned to the current Delta versions.
2. Split by time into train, validation and test (with an embargo before each cut).
3. Refuse to go on if a feature leaks the label.
4. Search depth / learning rate / rounds over time-ordered folds of the training period.
5. Fit the best setting with xgboost.spark on the training period, and the baselines beside it.
6. Choose the decision threshold on validation; judge model, baseline and ceiling (the true
   probabilities) on the test period, which nothing above has seen.
7. Log everything to MLflow, register the booster, apply the promotion rule.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from typing import Callable

import numpy as np
import pandas as pd
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.catalog import Catalog
from lakehouse.config import Config
from ml import evaluate as ev
from ml import registry
from ml.datasets import USE_CASES, TrainingDataError, UseCase, build_rows, check_leakage, time_split
from ml.models import spark_baseline, spark_gbt, spark_xgb
from ml.search import run_search, setting_weight

MIN_ROWS = {"train": 200, "validation": 50, "test": 50}


def epoch_seconds(s: pd.Series) -> np.ndarray:
    return ((s - pd.Timestamp(0)) / pd.Timedelta(seconds=1)).to_numpy(dtype=float)


def booster_scores(booster, use_case: UseCase, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """A registered booster's scores on feature rows (the path streaming scoring takes)."""
    out = booster.inplace_predict(frame[features].astype("float64"))
    return np.asarray(out)


def spark_scores(model, use_case: UseCase, df: DataFrame, kind: str) -> pd.DataFrame:
    """``event_id`` and the model's score(s) on ``df``, as pandas (Arrow)."""
    out = model.transform(df)
    if kind == "regression":
        col = F.least(F.greatest(F.col("prediction"), F.lit(0.0)), F.lit(1.0)).alias("score")
        return out.select("event_id", col).toPandas()
    arr = vector_to_array("probability")
    if use_case.kind == "multiclass":
        return out.select("event_id", *[arr[i].alias(f"score_{i}") for i in range(len(use_case.classes))]).toPandas()
    return out.select("event_id", arr[1].alias("score")).toPandas()


def _scores_of(frame: pd.DataFrame, use_case: UseCase) -> np.ndarray:
    if use_case.kind == "multiclass":
        return frame[[f"score_{i}" for i in range(len(use_case.classes))]].to_numpy()
    return frame["score"].to_numpy()


def _truth_of(frame: pd.DataFrame, use_case: UseCase) -> np.ndarray:
    if use_case.kind == "multiclass":
        return frame[["truth_p_down", "truth_p_flat", "truth_p_up"]].to_numpy()
    return frame["truth_p"].to_numpy()


def _amount(frame: pd.DataFrame) -> np.ndarray | None:
    return frame["amount"].to_numpy(dtype=float) if "amount" in frame.columns else None


def judge(use_case: UseCase, val: pd.DataFrame, test: pd.DataFrame, val_scores: np.ndarray | None,
          test_scores: np.ndarray, policy: ev.ThresholdPolicy | None = None) -> dict:
    """Test-period metrics of one scorer. For fraud the threshold is chosen on validation by
    ``policy``; F1 at the validation's best-F1 threshold is reported beside it."""
    y = test["label"].to_numpy()
    if use_case.kind == "binary":
        policy = policy or ev.ThresholdPolicy()
        threshold = ev.choose_threshold(val["label"].to_numpy(), val_scores, policy, _amount(val))
        out = ev.binary_metrics(y, test_scores, threshold, _amount(test), policy.review_cost, policy.on)
        f1_threshold = ev.choose_threshold(val["label"].to_numpy(), val_scores)
        out["f1_at_f1_threshold"] = ev.binary_metrics(y, test_scores, f1_threshold)["f1"]
        out["objective"] = policy.objective
        out["threshold_on"] = policy.on
        return out
    if use_case.kind == "multiclass":
        return ev.multiclass_metrics(y, test_scores, use_case.classes)
    truth = test["truth_p"].to_numpy(dtype=float)
    return ev.pd_metrics(y, test_scores, truth if np.isfinite(truth).all() else None)


def _flat_metrics(prefix: str, metrics: dict) -> dict[str, float]:
    return {f"{prefix}_{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}


def train_use_case(spark: SparkSession, cfg: Config, name: str, as_of: float | None = None,
                   step: Callable[[str], None] = lambda _msg: None, since: float | None = None,
                   run_tags: dict[str, str] | None = None) -> dict:
    """Train, judge, log, register and (by the rule) promote the model of one use case.

    ``since`` (epoch seconds) keeps only rows from that event time on: the fresh window a
    retraining learns from. ``run_tags`` are added to the MLflow run."""
    import mlflow

    from lakehouse.config import ConfigError
    from ml import calibration

    try:
        use_case = USE_CASES[name].configured(cfg)
        policy = ev.ThresholdPolicy.from_cfg(cfg)
        cal_method = str(cfg.get(f"ml.calibration.{name}") or "none")
        if cal_method not in calibration.METHODS:
            raise ValueError(f"ml.calibration.{name}: unknown method '{cal_method}' (known: {', '.join(calibration.METHODS)})")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    started = time.perf_counter()
    catalog = Catalog(cfg)
    features = list(use_case.features)
    step("building the training set")
    rows, lineage = build_rows(spark, catalog, use_case, as_of, float(cfg["ml.trading.flat_bps"]))
    if since is not None:
        rows = rows.where(F.col("event_time").cast("double") >= F.lit(float(since)))
    total = rows.count()
    if total == 0:
        window = "" if since is None else f" since {dt.datetime.fromtimestamp(since, dt.timezone.utc).isoformat()}"
        raise TrainingDataError(f"{name}: no labelled rows in {use_case.features_table}{window}; produce events and run the pipeline first")
    cap = int(cfg["ml.max_training_rows"])
    sampled = total > cap
    if sampled:
        rows = rows.sample(fraction=cap / total, seed=7)
    split = time_split(rows, float(cfg["ml.split.train"]), float(cfg["ml.split.validation"]), float(cfg["ml.split.embargo_s"]))
    rows = rows.withColumn("period", split.period()).persist()
    counts = {r["period"]: r["count"] for r in rows.groupBy("period").count().collect()}
    for period, need in MIN_ROWS.items():
        if counts.get(period, 0) < need:
            rows.unpersist()
            raise TrainingDataError(f"{name}: the {period} period has {counts.get(period, 0)} rows, fewer than {need}; "
                                    f"produce more history (jobs/produce.py) and run the pipeline")
    train_df, val_df, test_df = (rows.where(F.col("period") == p) for p in ("train", "validation", "test"))
    keep = ["event_id", "event_time", *[c for c in ("amount",) if c in rows.columns], *features, "label",
            *[c for c in rows.columns if c.startswith("truth_")]]
    # Row order feeds xgboost's subsampling in the search: fix it so a rerun finds the same setting.
    train_pd = train_df.select(*keep).toPandas().sort_values(["event_time", "event_id"]).reset_index(drop=True)
    val_pd = val_df.select(*keep).toPandas().sort_values("event_id").reset_index(drop=True)
    test_pd = test_df.select(*keep).toPandas().sort_values("event_id").reset_index(drop=True)
    # The test period lies strictly after every row any training or tuning step sees.
    assert train_pd["event_time"].max() < val_pd["event_time"].min() <= val_pd["event_time"].max() < test_pd["event_time"].min()

    # A feature the data never fills (no coordinates, say) carries nothing and would stop the
    # baseline's imputer: leave it out, and say so.
    empty = [f for f in features if train_pd[f].isna().all()]
    if empty:
        step(f"leaving out features with no values in the training period: {', '.join(empty)}")
        use_case = use_case.without(empty)
        features = list(use_case.features)
        if not features:
            raise TrainingDataError(f"{name}: no feature has a value in the training period")

    step("checking for leakage")
    feature_auc = check_leakage(train_pd, features, "label", float(cfg["ml.leakage_max_auc"]))

    step("searching hyperparameters")
    t0 = time.perf_counter()
    x = train_pd[features].to_numpy(dtype=float)
    y = train_pd["label"].to_numpy()
    search = run_search(cfg, use_case, x, y, epoch_seconds(train_pd["event_time"]), step)
    search_s = time.perf_counter() - t0

    step(f"fitting xgboost.spark ({search.best})")
    weight = setting_weight(search.best, y)
    t0 = time.perf_counter()
    xgb_model = spark_xgb(cfg, use_case, search.best, weight).fit(train_df)
    fit_s = time.perf_counter() - t0
    step("fitting the baselines")
    t0 = time.perf_counter()
    base_model = spark_baseline(use_case).fit(train_df)
    base_fit_s = time.perf_counter() - t0
    models = {"xgboost": (xgb_model, "regression" if use_case.kind == "pd" else "classification"),
              "baseline": (base_model, "classification")}
    if use_case.kind == "pd":
        models["gbt"] = (spark_gbt(use_case).fit(train_df), "regression")

    step("judging on the test period")
    metrics, scores = {}, {}
    for label, (model, kind) in models.items():
        v = val_pd[["event_id"]].merge(spark_scores(model, use_case, val_df, kind), on="event_id", how="left")
        t = test_pd[["event_id"]].merge(spark_scores(model, use_case, test_df, kind), on="event_id", how="left")
        scores[label] = (_scores_of(v, use_case), _scores_of(t, use_case))
    # Calibrate the booster's scores on validation (the threshold is then chosen on calibrated
    # validation scores); the raw scores are judged too, to show what calibration changed.
    raw_xgb = scores["xgboost"]
    cal = calibration.fit(cal_method, val_pd["label"].to_numpy(), raw_xgb[0])
    if cal.method != "none":
        scores["xgboost"] = (cal.apply(raw_xgb[0]), cal.apply(raw_xgb[1]))
        scores["xgboost_uncalibrated"] = raw_xgb
    for label in scores:
        metrics[label] = judge(use_case, val_pd, test_pd, scores[label][0], scores[label][1], policy)
    # The ceiling needs the generator's true probability of every validation and test row; on a
    # user's own data there is none, and everything else runs without it.
    ceiling = all(np.isfinite(_truth_of(f, use_case).astype(float)).all() for f in (val_pd, test_pd))
    if ceiling:
        scores["ceiling"] = (_truth_of(val_pd, use_case), _truth_of(test_pd, use_case))
        metrics["ceiling"] = judge(use_case, val_pd, test_pd, *scores["ceiling"], policy)
    else:
        step("no generator truth for these rows: the ceiling is not available")

    # Is the model better than its baseline at all? The same one-sided paired test as promotion.
    y_test = test_pd["label"].to_numpy()
    alpha = float(cfg.get("ml.promotion.alpha") or 0.05)
    tested = ev.promotion_test(use_case.kind, use_case.promotion_metric, use_case.promotion_higher_is_better, y_test,
                               scores["xgboost"][1], scores["baseline"][1], n_boot=int(cfg["ml.promotion.bootstrap"]))
    vs_baseline = {"metric": use_case.promotion_metric, "test": tested["test"], "p_value": float(tested["p_value"]),
                   "alpha": alpha, "significant": bool(tested["p_value"] < alpha)}
    if not vs_baseline["significant"]:
        step(f"xgboost is not significantly better than the baseline ({tested['test']} p = {tested['p_value']:.3g})")

    booster = xgb_model.get_booster()
    direct = booster_scores(booster, use_case, test_pd, features)
    agreement = float(np.max(np.abs(direct - raw_xgb[1]))) if len(direct) else 0.0
    direct = cal.apply(direct)

    figures = _figures(use_case, test_pd, scores, metrics)
    report_dir = cfg.path("paths.reports") / "training" / name
    report_dir.mkdir(parents=True, exist_ok=True)
    for fname, fig in figures.items():
        fig.savefig(report_dir / fname, dpi=110)

    step("logging to MLflow and registering")
    client = registry.connect(cfg)
    exp_id = registry.experiment(cfg, client, name)
    reg_name = registry.registered_name(cfg, use_case.registered_name)
    threshold = metrics["xgboost"].get("threshold")
    with mlflow.start_run(experiment_id=exp_id, run_name=f"{name}-{time.strftime('%Y%m%dT%H%M%S')}") as run:
        mlflow.log_params({
            "use_case": name, "model": "SparkXGBRegressor" if use_case.kind == "pd" else "SparkXGBClassifier",
            "ceiling": "available" if ceiling else "not available (no generator truth)",
            "baseline": "LogisticRegression", "device": cfg["ml.xgboost.device"], "num_workers": cfg["ml.xgboost.num_workers"],
            "n_features": len(features), "rows_total": total, "sampled": sampled,
            "feature_groups": ",".join(use_case.groups), "features_left_out_empty": ",".join(empty) or "none",
            "calibration": cal.method, "calibration_knots": len(cal.x),
            **({f"threshold_{k}": v for k, v in policy.to_dict().items()} if use_case.kind == "binary" else {}),
            **{f"rows_{p}": counts.get(p, 0) for p in ("train", "validation", "test", "embargo")},
            **{f"best_{k}": v for k, v in search.best.items()}, "scale_pos_weight": weight,
            **{f"split_{k}": v for k, v in split.to_dict().items()}, "as_of": as_of, "since": since,
            "search_folds": cfg["ml.search.folds"], "search_settings": int(len(search.folds) / max(1, search.folds["fold"].nunique())),
            "fold_metric": search.metric, "promotion_metric": use_case.promotion_metric,
            "promotion_rule": f"champion moves only if test-period {use_case.promotion_metric} "
                              f"{'rises' if use_case.promotion_higher_is_better else 'falls'} by more than {cfg['ml.promotion.min_delta']}",
        })
        for label, m in metrics.items():
            mlflow.log_metrics(_flat_metrics(f"test_{label}", m))
        mlflow.log_metrics({"train_seconds_xgboost": fit_s, "train_seconds_baseline": base_fit_s, "search_seconds": search_s,
                            "spark_vs_booster_max_abs_diff": agreement, "vs_baseline_p_value": vs_baseline["p_value"],
                            "search_best_mean": float(search.best_folds()["metric"].mean()),
                            "search_baseline_mean": float(search.baseline["metric"].mean())})
        mlflow.log_dict({"features": features}, "features.json")
        mlflow.log_dict(cal.to_dict(), calibration.ARTIFACT)
        mlflow.log_dict({"tables": lineage, "as_of": as_of, "since": since, "split": split.to_dict(), "sampled": sampled},
                        "lineage.json")
        if run_tags:
            mlflow.set_tags(run_tags)
        mlflow.log_dict(metrics, "metrics.json")
        mlflow.log_dict(vs_baseline, "vs_baseline.json")
        mlflow.set_tag("beats_baseline", "significantly" if vs_baseline["significant"] else "not significantly")
        mlflow.log_dict({"single_feature_auc": feature_auc}, "leakage_check.json")
        mlflow.log_text(search.folds.to_csv(index=False), "search/folds.csv")
        mlflow.log_text(search.baseline.to_csv(index=False), "search/baseline_folds.csv")
        mlflow.log_text(_test_scores(use_case, test_pd, scores).to_csv(index=False), "test_scores.csv")
        for fname, fig in figures.items():
            mlflow.log_figure(fig, f"figures/{fname}")
        example = test_pd[features].head(5).astype("float64")
        tags = {"features": json.dumps(features), "use_case": name, "run_id": run.info.run_id,
                "classes": json.dumps(list(use_case.classes)), "kind": use_case.kind, "calibration": cal.method}
        if threshold is not None:
            tags["threshold"] = repr(float(threshold))
        if use_case.kind == "binary":
            tags.update(threshold_objective=policy.objective, threshold_on=policy.on)
        version = registry.log_booster(client, booster, reg_name, example,
                                       cal.apply(booster_scores(booster, use_case, example, features)), tags)

        step("applying the promotion rule")
        decision = promote(client, cfg, use_case, reg_name, version, test_pd, direct)
        mlflow.log_dict(decision.to_dict(), "promotion.json")
        mlflow.set_tags({"promoted": str(decision.promote).lower(), "registered_version": version})
        run_id = run.info.run_id
    rows.unpersist()
    for fig in figures.values():
        fig.clear()
    result = {
        "use_case": name, "rows": {p: counts.get(p, 0) for p in ("train", "validation", "test", "embargo")},
        "rows_total": total, "sampled": sampled, "split": split.to_dict(), "best": search.best, "ceiling_available": ceiling,
        "search": {"metric": search.metric, "best_mean": float(search.best_folds()["metric"].mean()),
                   "baseline_mean": float(search.baseline["metric"].mean()), "folds": int(search.folds["fold"].nunique())},
        "metrics": metrics, "seconds": {"search": round(search_s, 1), "fit_xgboost": round(fit_s, 1),
                                        "fit_baseline": round(base_fit_s, 1), "total": round(time.perf_counter() - started, 1)},
        "model": {"name": reg_name, "version": version, "run_id": run_id, "threshold": threshold,
                  "calibration": cal.method, "threshold_objective": policy.objective if use_case.kind == "binary" else None},
        "features": features,
        "promotion": decision.to_dict(), "vs_baseline": vs_baseline, "lineage": lineage, "spark_vs_booster_max_abs_diff": agreement,
        "report_dir": str(report_dir),
    }
    (report_dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def promotion_value(use_case: UseCase, test: pd.DataFrame, scores: np.ndarray) -> float:
    """The promotion metric of a scorer on the test rows."""
    return float(judge(use_case, test, test, scores if use_case.kind == "binary" else None, scores)[use_case.promotion_metric])


def versus_champion(client, cfg: Config, use_case: UseCase, reg_name: str, test: pd.DataFrame,
                    challenger_scores: np.ndarray) -> tuple[registry.Decision, np.ndarray | None]:
    """Score the current champion of ``reg_name`` on the same test rows, run the paired test and
    apply the rule (``registry.decide``); returns the decision and the champion's scores (None
    when there is no champion, or it needs features the rows lack)."""
    champion = registry.alias_version(client, reg_name, registry.CHAMPION)
    champ_value, tested, champ_scores = None, {}, None
    if champion is not None:
        feats = registry.version_features(client, reg_name, champion)
        if set(feats) <= set(test.columns):
            booster = registry.load_booster(reg_name, str(champion.version))
            champ_cal = registry.load_calibration(client, reg_name, champion)
            champ_scores = champ_cal.apply(booster_scores(booster, use_case, test, feats))
            champ_value = promotion_value(use_case, test, champ_scores)
            tested = ev.promotion_test(use_case.kind, use_case.promotion_metric, use_case.promotion_higher_is_better,
                                       test["label"].to_numpy(), challenger_scores, champ_scores,
                                       n_boot=int(cfg["ml.promotion.bootstrap"]))
    alpha = cfg.get("ml.promotion.alpha")
    decision = registry.decide(use_case.promotion_metric, use_case.promotion_higher_is_better,
                               promotion_value(use_case, test, challenger_scores), champ_value,
                               str(champion.version) if champion is not None else None, float(cfg["ml.promotion.min_delta"]),
                               tested.get("p_value"), None if alpha is None else float(alpha), tested.get("test"))
    return decision, champ_scores


def promote(client, cfg: Config, use_case: UseCase, reg_name: str, version: str, test: pd.DataFrame,
            challenger_scores: np.ndarray) -> registry.Decision:
    """Judge the new version against the champion on the same test rows (``versus_champion``)
    and move the aliases by the decision."""
    decision, _ = versus_champion(client, cfg, use_case, reg_name, test, challenger_scores)
    registry.set_aliases(client, reg_name, version, decision)
    return decision


def _test_scores(use_case: UseCase, test: pd.DataFrame, scores: dict) -> pd.DataFrame:
    """Test-period labels and every scorer's score per event (the DeLong test reads them)."""
    out = pd.DataFrame({"event_id": test["event_id"], "label": test["label"]})
    for who, (_, t) in scores.items():
        if use_case.kind == "multiclass":
            for i, c in enumerate(use_case.classes):
                out[f"{who}_{c}"] = t[:, i]
        else:
            out[who] = t
    return out


def _figures(use_case: UseCase, test: pd.DataFrame, scores: dict, metrics: dict) -> dict:
    y = test["label"].to_numpy()
    if use_case.kind == "binary":
        curves = {"XGBoost": (y, scores["xgboost"][1]), "logistic baseline": (y, scores["baseline"][1])}
        if "ceiling" in scores:
            curves["ceiling (true p)"] = (y, scores["ceiling"][1])
        tables = {k: ev.calibration_table(scores[k][1], y, None) for k in ("xgboost", "xgboost_uncalibrated", "baseline") if k in scores}
        return {"roc.png": ev.roc_figure(curves, "Fraud: ROC on the test period"),
                "reliability.png": ev.calibration_figure(tables, "Fraud: reliability on the test period",
                                                         "mean predicted probability (decile)", "observed fraud rate")}
    if use_case.kind == "multiclass":
        return {f"confusion_{k}.png": ev.confusion_figure(metrics[k]["confusion"], use_case.classes, f"Trading signal: {k}")
                for k in ("xgboost", "baseline", "ceiling") if k in metrics}
    truth = test["truth_p"].to_numpy()
    tables = {k: ev.calibration_table(scores[k][1], y, truth) for k in ("xgboost", "gbt", "baseline")}
    return {"calibration.png": ev.calibration_figure(tables, "Loan PD: calibration on the test period"),
            "roc.png": ev.roc_figure({"XGBoost": (y, scores["xgboost"][1]), "GBTRegressor": (y, scores["gbt"][1]),
                                      "logistic baseline": (y, scores["baseline"][1]), "true PD": (y, truth)},
                                     "Loan PD: ROC against realised defaults")}


def train(spark: SparkSession, cfg: Config, use_cases: list[str], as_of: float | None = None,
          step: Callable[[str, str], None] = lambda _uc, _msg: None) -> dict:
    """Train each named use case in turn; returns their results by name."""
    return {name: train_use_case(spark, cfg, name, as_of, lambda msg, n=name: step(n, msg)) for name in use_cases}
