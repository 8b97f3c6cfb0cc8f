"""Train -> validate -> promote, for one use case.

1. Build the labelled rows from gold point in time, pinned to the current Delta versions.
2. Split by time into train, validation and test (with an embargo before each cut).
3. Refuse to go on if a feature leaks the label.
4. Search depth / learning rate / rounds / class weight over time-ordered folds of the training
   period; take the rounds of the best setting by early stopping on the validation period.
5. Fit that setting with xgboost.spark on the training period, and the baselines beside it;
   report each feature group's gain and what the model loses without it.
6. Choose the decision threshold on validation; judge model, baseline and ceiling (the true
   probabilities) on the test period, which nothing above has seen.
7. Log everything to MLflow, register the booster, apply the promotion rule.

``train_use_case`` runs them as four steps, each handing the next a record:
``build_training_data`` (1-3) -> ``train_models`` (4-5) -> ``validate_models`` (6) ->
``register_and_promote`` (7).
"""
from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import mlflow
import numpy as np
import pandas as pd
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.catalog import Catalog
from lakehouse.config import Config, ConfigError
from ml import calibration
from ml import evaluate as ev
from ml import registry
from ml.datasets import USE_CASES, TimeSplit, TrainingDataError, UseCase, build_rows, check_leakage, time_split
from ml.models import spark_baseline, spark_gbt, spark_xgb
from ml.search import SearchResult, early_stopping, feature_groups, run_search, setting_weight

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


# ---------------------------------------------------------------------------------------------
# What each step hands the next


@dataclass
class TrainingData:
    """One use case's labelled rows split by time: Spark frames to fit on and score, pandas
    copies to search and judge on. ``rows`` is persisted until ``train_use_case`` is done."""

    use_case: UseCase              # without the features the training period never fills
    features: list[str]
    rows: DataFrame                # every row, with its ``period``
    train_df: DataFrame
    val_df: DataFrame
    test_df: DataFrame
    train_pd: pd.DataFrame
    val_pd: pd.DataFrame
    test_pd: pd.DataFrame
    split: TimeSplit
    counts: dict[str, int]         # rows per period
    total: int                     # labelled rows before sampling
    sampled: bool
    lineage: list[dict]
    as_of: float | None
    since: float | None
    empty: list[str]               # features left out: no value in the training period
    feature_auc: dict[str, float]  # the leakage check's single-feature AUCs


@dataclass
class TrainedModels:
    """The searched setting, the setting fitted (its rounds by early stopping), the fitted models
    (each with how ``spark_scores`` reads it) and what each feature group brings."""

    search: SearchResult
    setting: dict
    stopping: dict | None       # early stopping on validation: rounds, max_rounds, patience, eval_metric, best_score
    groups: dict                # feature_groups: gain share and ablation per group
    weight: float | None
    models: dict[str, tuple[object, str]]   # xgboost, baseline[, gbt] -> (Spark model, classification | regression)
    search_s: float
    fit_s: float
    base_fit_s: float


@dataclass
class Validation:
    """Everything judged on the held-out periods; ``direct`` is what the promotion rule compares."""

    policy: ev.ThresholdPolicy
    cal: calibration.Calibration
    scores: dict[str, tuple[np.ndarray | None, np.ndarray]]   # scorer -> (validation, test) scores
    metrics: dict[str, dict]
    ceiling: bool
    vs_baseline: dict
    on_validation: dict       # the fold metric of model and baseline on validation; baseline_better
    booster: object
    direct: np.ndarray        # the registered booster's calibrated test scores
    agreement: float          # largest |xgboost.spark - booster| raw score difference
    figures: dict
    report_dir: Path


@dataclass
class Registered:
    """The registered version of the run, its threshold and the promotion rule's decision."""

    name: str
    version: str
    run_id: str
    threshold: float | None
    decision: registry.Decision


# ---------------------------------------------------------------------------------------------
# train -> validate -> promote


def train_use_case(spark: SparkSession, cfg: Config, name: str, as_of: float | None = None,
                   step: Callable[[str], None] = lambda _msg: None, since: float | None = None,
                   run_tags: dict[str, str] | None = None) -> dict:
    """Train, judge, log, register and (by the rule) promote the model of one use case.

    ``since`` (epoch seconds) keeps only rows from that event time on: the fresh window a
    retraining learns from. ``run_tags`` are added to the MLflow run."""
    use_case, policy, cal_method = _settings(cfg, name)
    started = time.perf_counter()
    data = build_training_data(spark, cfg, use_case, as_of, since, step)
    trained = train_models(cfg, data, step)
    validation = validate_models(cfg, data, trained, policy, cal_method, step)
    registered = register_and_promote(cfg, data, trained, validation, run_tags, step)
    data.rows.unpersist()
    for fig in validation.figures.values():
        fig.clear()
    result = _result(data, trained, validation, registered, started)
    (validation.report_dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def _settings(cfg: Config, name: str) -> tuple[UseCase, ev.ThresholdPolicy, str]:
    """The configured use case, threshold policy and calibration method; a bad value is a ConfigError."""
    try:
        use_case = USE_CASES[name].configured(cfg)
        policy = ev.ThresholdPolicy.from_cfg(cfg)
        cal_method = str(cfg.get(f"ml.calibration.{name}") or "none")
        if cal_method not in calibration.METHODS:
            raise ValueError(f"ml.calibration.{name}: unknown method '{cal_method}' (known: {', '.join(calibration.METHODS)})")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return use_case, policy, cal_method


def _labelled_rows(spark: SparkSession, cfg: Config, use_case: UseCase, as_of: float | None,
                   since: float | None) -> tuple[DataFrame, list[dict], int, bool]:
    """Gold's labelled rows point in time (from ``since`` on), sampled down to
    ``ml.max_training_rows``; with their lineage, the count before sampling and whether it sampled."""
    rows, lineage = build_rows(spark, Catalog(cfg), use_case, as_of, float(cfg["ml.trading.flat_bps"]))
    if since is not None:
        rows = rows.where(F.col("event_time").cast("double") >= F.lit(float(since)))
    total = rows.count()
    if total == 0:
        window = "" if since is None else f" since {dt.datetime.fromtimestamp(since, dt.timezone.utc).isoformat()}"
        raise TrainingDataError(f"{use_case.name}: no labelled rows in {use_case.features_table}{window}; "
                                f"produce events and run the pipeline first")
    cap = int(cfg["ml.max_training_rows"])
    sampled = total > cap
    if sampled:
        rows = rows.sample(fraction=cap / total, seed=7)
    return rows, lineage, total, sampled


def build_training_data(spark: SparkSession, cfg: Config, use_case: UseCase, as_of: float | None, since: float | None,
                        step: Callable[[str], None]) -> TrainingData:
    """Labelled rows split by time into train, validation and test (an embargo before each cut),
    each period large enough, without features the training period never fills; raises
    ``LeakageError`` if a feature leaks the label."""
    name, features = use_case.name, list(use_case.features)
    step("building the training set")
    rows, lineage, total, sampled = _labelled_rows(spark, cfg, use_case, as_of, since)
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
    return TrainingData(use_case, features, rows, train_df, val_df, test_df, train_pd, val_pd, test_pd, split, counts,
                        total, sampled, lineage, as_of, since, empty, feature_auc)


def train_models(cfg: Config, data: TrainingData, step: Callable[[str], None]) -> TrainedModels:
    """Search depth / learning rate / rounds over time-ordered folds of the training period, fit
    the best setting with xgboost.spark on the whole of it, and the baselines beside it."""
    use_case, train_pd, train_df = data.use_case, data.train_pd, data.train_df
    step("searching hyperparameters")
    t0 = time.perf_counter()
    x = train_pd[data.features].to_numpy(dtype=float)
    y = train_pd["label"].to_numpy()
    search = run_search(cfg, use_case, x, y, epoch_seconds(train_pd["event_time"]), step)
    x_val, y_val = data.val_pd[data.features].to_numpy(dtype=float), data.val_pd["label"].to_numpy()
    setting, stopping = dict(search.best), None
    if int(cfg.get("ml.xgboost.early_stopping_rounds") or 0) > 0:
        stopping = early_stopping(cfg, use_case, search.best, x, y, x_val, y_val)
        if stopping["rounds"] is None:
            step(f"no early stopping: the validation period lacks a class; {setting['n_estimators']} rounds as searched")
        else:
            setting["n_estimators"] = stopping["rounds"]
            step(f"early stopping on validation {stopping['eval_metric']}: {stopping['rounds']} rounds "
                 f"(searched {search.best['n_estimators']}, at most {stopping['max_rounds']})")
    search_s = time.perf_counter() - t0

    step(f"fitting xgboost.spark ({setting})")
    weight = setting_weight(setting, y)
    t0 = time.perf_counter()
    xgb_model = spark_xgb(cfg, use_case, setting, weight).fit(train_df)
    fit_s = time.perf_counter() - t0
    step("feature groups: gain and ablation")
    groups = feature_groups(cfg, use_case, setting, xgb_model.get_booster(), x, y, x_val, y_val)
    step("fitting the baselines")
    t0 = time.perf_counter()
    base_model = spark_baseline(use_case).fit(train_df)
    base_fit_s = time.perf_counter() - t0
    models = {"xgboost": (xgb_model, "regression" if use_case.kind == "pd" else "classification"),
              "baseline": (base_model, "classification")}
    if use_case.kind == "pd":
        models["gbt"] = (spark_gbt(use_case, int(cfg["ml.gbt.max_depth"]), int(cfg["ml.gbt.max_iter"])).fit(train_df), "regression")
    return TrainedModels(search, setting, stopping, groups, weight, models, search_s, fit_s, base_fit_s)


def validate_models(cfg: Config, data: TrainingData, trained: TrainedModels, policy: ev.ThresholdPolicy,
                    cal_method: str, step: Callable[[str], None]) -> Validation:
    """Calibrate on validation, choose the threshold there, and judge model, baselines and the
    ceiling (the true probabilities) on the test period, which nothing before has seen; test
    the model against its baseline, check the registered booster scores as xgboost.spark did,
    and draw the figures into the training report folder."""
    use_case, val_pd, test_pd = data.use_case, data.val_pd, data.test_pd
    step("judging on the test period")
    scores = {}
    for label, (model, kind) in trained.models.items():
        v = val_pd[["event_id"]].merge(spark_scores(model, use_case, data.val_df, kind), on="event_id", how="left")
        t = test_pd[["event_id"]].merge(spark_scores(model, use_case, data.test_df, kind), on="event_id", how="left")
        scores[label] = (_scores_of(v, use_case), _scores_of(t, use_case))
    # Calibrate the booster's scores on validation (the threshold is then chosen on calibrated
    # validation scores); the raw scores are judged too, to show what calibration changed.
    raw_xgb = scores["xgboost"]
    cal = calibration.fit(cal_method, val_pd["label"].to_numpy(), raw_xgb[0])
    if cal.method != "none":
        scores["xgboost"] = (cal.apply(raw_xgb[0]), cal.apply(raw_xgb[1]))
        scores["xgboost_uncalibrated"] = raw_xgb
    metrics = {label: judge(use_case, val_pd, test_pd, scores[label][0], scores[label][1], policy) for label in scores}
    # The ceiling needs the generator's true probability of every validation and test row; on a
    # user's own data there is none, and everything else runs without it.
    ceiling = all(np.isfinite(_truth_of(f, use_case).astype(float)).all() for f in (val_pd, test_pd))
    if ceiling:
        scores["ceiling"] = (_truth_of(val_pd, use_case), _truth_of(test_pd, use_case))
        metrics["ceiling"] = judge(use_case, val_pd, test_pd, *scores["ceiling"], policy)
    else:
        step("no generator truth for these rows: the ceiling is not available")
    vs_baseline = _versus_baseline(cfg, use_case, test_pd, scores, step)
    on_validation = _baseline_on_validation(cfg, use_case, val_pd, scores, step)

    booster = trained.models["xgboost"][0].get_booster()
    direct = booster_scores(booster, use_case, test_pd, data.features)
    agreement = float(np.max(np.abs(direct - raw_xgb[1]))) if len(direct) else 0.0
    figures = _figures(use_case, test_pd, scores, metrics)
    report_dir = cfg.path("paths.reports") / "training" / use_case.name
    report_dir.mkdir(parents=True, exist_ok=True)
    for fname, fig in figures.items():
        fig.savefig(report_dir / fname, dpi=110)
    return Validation(policy, cal, scores, metrics, ceiling, vs_baseline, on_validation, booster, cal.apply(direct), agreement,
                      figures, report_dir)


def _baseline_on_validation(cfg: Config, use_case: UseCase, val: pd.DataFrame, scores: dict,
                            step: Callable[[str], None]) -> dict:
    """The fold metric of the model and of its baseline on the validation period, which chose
    the model's rounds but trained neither. A higher baseline is said; one higher by the
    promotion rule's own standard (a one-sided paired test at ``ml.promotion.alpha``) is
    ``baseline_better``, and then the promotion rule keeps the champion (``promote``)."""
    y = val["label"].to_numpy()
    out = {"metric": use_case.fold_metric, "model": None, "baseline": None, "baseline_higher": False, "p_value": None,
           "baseline_better": False}
    if use_case.kind != "pd" and len(np.unique(y)) < (len(use_case.classes) or 2):
        return out
    model = ev.fold_metric(use_case.kind, use_case.fold_metric, y, scores["xgboost"][0])
    base = ev.fold_metric(use_case.kind, use_case.fold_metric, y, scores["baseline"][0])
    out.update(model=model, baseline=base, baseline_higher=bool(base > model))
    if out["baseline_higher"]:
        alpha = float(cfg.get("ml.promotion.alpha") or 0.05)
        tested = ev.promotion_test(use_case.kind, use_case.fold_metric, True, y, scores["baseline"][0], scores["xgboost"][0],
                                   n_boot=int(cfg["ml.promotion.bootstrap"]))
        out.update(p_value=float(tested["p_value"]), test=tested["test"], baseline_better=bool(tested["p_value"] < alpha))
        step(f"the logistic baseline scores higher than xgboost on validation ({use_case.fold_metric} {base:.4f} against "
             f"{model:.4f}, {tested['test']} p = {tested['p_value']:.3g}" + (": significantly)" if out["baseline_better"] else ")"))
    return out


def _versus_baseline(cfg: Config, use_case: UseCase, test: pd.DataFrame, scores: dict, step: Callable[[str], None]) -> dict:
    """Is the model better than its baseline at all? The same one-sided paired test as promotion."""
    alpha = float(cfg.get("ml.promotion.alpha") or 0.05)
    tested = ev.promotion_test(use_case.kind, use_case.promotion_metric, use_case.promotion_higher_is_better,
                               test["label"].to_numpy(), scores["xgboost"][1], scores["baseline"][1],
                               n_boot=int(cfg["ml.promotion.bootstrap"]))
    out = {"metric": use_case.promotion_metric, "test": tested["test"], "p_value": float(tested["p_value"]),
           "alpha": alpha, "significant": bool(tested["p_value"] < alpha)}
    if not out["significant"]:
        step(f"xgboost is not significantly better than the baseline ({tested['test']} p = {tested['p_value']:.3g})")
    return out


def register_and_promote(cfg: Config, data: TrainingData, trained: TrainedModels, validation: Validation,
                         run_tags: dict[str, str] | None, step: Callable[[str], None]) -> Registered:
    """Log the run to MLflow (parameters, metrics, evidence, figures), register the booster with
    its calibration, and apply the promotion rule (``promote``) inside the same run."""
    use_case, features, v = data.use_case, data.features, validation
    step("logging to MLflow and registering")
    client = registry.connect(cfg)
    exp_id = registry.experiment(cfg, client, use_case.name)
    reg_name = registry.registered_name(cfg, use_case.registered_name)
    threshold = v.metrics["xgboost"].get("threshold")
    with mlflow.start_run(experiment_id=exp_id, run_name=f"{use_case.name}-{time.strftime('%Y%m%dT%H%M%S')}") as run:
        mlflow.log_params(_run_params(cfg, data, trained, v))
        _log_evidence(data, trained, v, run_tags)
        example = data.test_pd[features].head(5).astype("float64")
        tags = {"features": json.dumps(features), "use_case": use_case.name, "run_id": run.info.run_id,
                "classes": json.dumps(list(use_case.classes)), "kind": use_case.kind, "calibration": v.cal.method}
        if threshold is not None:
            tags["threshold"] = repr(float(threshold))
        if use_case.kind == "binary":
            tags.update(threshold_objective=v.policy.objective, threshold_on=v.policy.on)
        metadata = {"use_case": use_case.name, "kind": use_case.kind, "calibration": v.cal.method,
                    "threshold": None if threshold is None else float(threshold),
                    **({"threshold_on": v.policy.on, "threshold_objective": v.policy.objective} if use_case.kind == "binary" else {})}
        version = registry.log_booster(client, v.booster, reg_name, example,
                                       v.cal.apply(booster_scores(v.booster, use_case, example, features)), tags,
                                       calibration=v.cal, classes=use_case.classes, metadata=metadata)

        step("applying the promotion rule")
        decision = promote(client, cfg, use_case, reg_name, version, data.test_pd, v.direct,
                           baseline_better=v.on_validation["baseline_better"])
        mlflow.log_dict(decision.to_dict(), "promotion.json")
        mlflow.set_tags({"promoted": str(decision.promote).lower(), "registered_version": version})
        run_id = run.info.run_id
    return Registered(reg_name, version, run_id, threshold, decision)


def _run_params(cfg: Config, data: TrainingData, trained: TrainedModels, v: Validation) -> dict:
    """The MLflow run's parameters: what was trained on, how it was split, searched and judged."""
    use_case, search = data.use_case, trained.search
    return {
        "use_case": use_case.name, "model": "SparkXGBRegressor" if use_case.kind == "pd" else "SparkXGBClassifier",
        "ceiling": "available" if v.ceiling else "not available (no generator truth)",
        "baseline": "LogisticRegression", "device": cfg["ml.xgboost.device"], "num_workers": cfg["ml.xgboost.num_workers"],
        "n_features": len(data.features), "rows_total": data.total, "sampled": data.sampled,
        "feature_groups": ",".join(use_case.groups), "features_left_out_empty": ",".join(data.empty) or "none",
        "calibration": v.cal.method, "calibration_knots": len(v.cal.x),
        **({f"threshold_{k}": val for k, val in v.policy.to_dict().items()} if use_case.kind == "binary" else {}),
        **{f"rows_{p}": data.counts.get(p, 0) for p in ("train", "validation", "test", "embargo")},
        **{f"best_{k}": val for k, val in search.best.items()}, "scale_pos_weight": trained.weight,
        "fitted_n_estimators": trained.setting["n_estimators"],
        "early_stopping": "off" if trained.stopping is None else (
            f"{trained.stopping['eval_metric']} on validation, patience {trained.stopping['patience']}"
            if trained.stopping["rounds"] is not None else "skipped: validation lacks a class"),
        **{f"split_{k}": val for k, val in data.split.to_dict().items()}, "as_of": data.as_of, "since": data.since,
        "search_folds": cfg["ml.search.folds"], "search_settings": int(len(search.folds) / max(1, search.folds["fold"].nunique())),
        "fold_metric": search.metric, "promotion_metric": use_case.promotion_metric,
        "promotion_rule": f"champion moves only if test-period {use_case.promotion_metric} "
                          f"{'rises' if use_case.promotion_higher_is_better else 'falls'} by more than {cfg['ml.promotion.min_delta']}",
    }


def _log_evidence(data: TrainingData, trained: TrainedModels, v: Validation, run_tags: dict[str, str] | None) -> None:
    """Metrics, artifacts and figures of the active run: what the reports and the monitor read back."""
    search = trained.search
    for label, m in v.metrics.items():
        mlflow.log_metrics(_flat_metrics(f"test_{label}", m))
    mlflow.log_metrics({"train_seconds_xgboost": trained.fit_s, "train_seconds_baseline": trained.base_fit_s,
                        "search_seconds": trained.search_s, "spark_vs_booster_max_abs_diff": v.agreement,
                        "vs_baseline_p_value": v.vs_baseline["p_value"],
                        "search_best_mean": float(search.best_folds()["metric"].mean()),
                        "search_baseline_mean": float(search.baseline["metric"].mean())})
    mlflow.log_dict({"features": data.features}, "features.json")
    mlflow.log_dict(v.cal.to_dict(), calibration.ARTIFACT)
    mlflow.log_dict({"tables": data.lineage, "as_of": data.as_of, "since": data.since, "split": data.split.to_dict(),
                     "sampled": data.sampled}, "lineage.json")
    if run_tags:
        mlflow.set_tags(run_tags)
    mlflow.log_dict(v.metrics, "metrics.json")
    mlflow.log_dict(v.vs_baseline, "vs_baseline.json")
    mlflow.log_dict(v.on_validation, "baseline_on_validation.json")
    mlflow.log_dict(trained.groups, "feature_groups.json")
    mlflow.set_tag("beats_baseline", "significantly" if v.vs_baseline["significant"] else "not significantly")
    mlflow.log_dict({"single_feature_auc": data.feature_auc}, "leakage_check.json")
    mlflow.log_text(search.folds.to_csv(index=False), "search/folds.csv")
    mlflow.log_text(search.baseline.to_csv(index=False), "search/baseline_folds.csv")
    mlflow.log_text(_test_scores(data.use_case, data.test_pd, v.scores).to_csv(index=False), "test_scores.csv")
    for fname, fig in v.figures.items():
        mlflow.log_figure(fig, f"figures/{fname}")


def _result(data: TrainingData, trained: TrainedModels, v: Validation, registered: Registered, started: float) -> dict:
    """What ``train_use_case`` returns (and writes to ``result.json``)."""
    use_case, search = data.use_case, trained.search
    rows = {p: data.counts.get(p, 0) for p in ("train", "validation", "test", "embargo")}
    return {
        "use_case": use_case.name, "rows": rows, "rows_total": data.total, "sampled": data.sampled,
        "split": data.split.to_dict(), "best": search.best, "fitted": trained.setting, "early_stopping": trained.stopping,
        "feature_groups": trained.groups, "baseline_on_validation": v.on_validation, "ceiling_available": v.ceiling,
        "search": {"metric": search.metric, "best_mean": float(search.best_folds()["metric"].mean()),
                   "baseline_mean": float(search.baseline["metric"].mean()), "folds": int(search.folds["fold"].nunique())},
        "metrics": v.metrics, "seconds": {"search": round(trained.search_s, 1), "fit_xgboost": round(trained.fit_s, 1),
                                          "fit_baseline": round(trained.base_fit_s, 1),
                                          "total": round(time.perf_counter() - started, 1)},
        "model": {"name": registered.name, "version": registered.version, "run_id": registered.run_id,
                  "threshold": registered.threshold, "calibration": v.cal.method,
                  "threshold_objective": v.policy.objective if use_case.kind == "binary" else None},
        "features": data.features,
        "promotion": registered.decision.to_dict(), "vs_baseline": v.vs_baseline, "lineage": data.lineage,
        "spark_vs_booster_max_abs_diff": v.agreement, "report_dir": str(v.report_dir),
    }


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
            challenger_scores: np.ndarray, baseline_better: bool = False) -> registry.Decision:
    """Judge the new version against the champion on the same test rows (``versus_champion``)
    and move the aliases by the decision. A version its own baseline beat on validation does not
    replace a champion (the first version still becomes champion: something must serve)."""
    decision, _ = versus_champion(client, cfg, use_case, reg_name, test, challenger_scores)
    if baseline_better and decision.promote:
        note = "its logistic baseline scored better on validation"
        decision = (replace(decision, promote=False, reason=f"{decision.reason}; kept: {note}") if decision.champion_version
                    else replace(decision, reason=f"{decision.reason}; promoted although {note}"))
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
