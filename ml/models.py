"""Estimators: distributed XGBoost (xgboost.spark) and pyspark.ml baselines for the final fits,
native XGBoost and scikit-learn twins of them for the per-fold search on the driver.

The device comes from config (``ml.xgboost.device``): ``cpu`` by default, ``cuda`` under the
gpu profile, where the RAPIDS Accelerator runs the SQL and XGBoost trains on the GPU.
"""
from __future__ import annotations

import logging

import numpy as np
import xgboost as xgb
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import Imputer, StandardScaler, VectorAssembler
from pyspark.ml.regression import GBTRegressor
from sklearn import linear_model, preprocessing
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor

from lakehouse.config import Config
from ml.datasets import UseCase

# xgboost.spark logs every boosting round at INFO; a job shows progress its own way.
logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)


def xgb_params(cfg: Config, use_case: UseCase, setting: dict, pos_weight: float | None = None) -> dict:
    """Booster parameters of one search setting, for either the Spark or the native API."""
    params = {"max_depth": int(setting["max_depth"]), "learning_rate": float(setting["learning_rate"]),
              "n_estimators": int(setting["n_estimators"]), "tree_method": "hist", "device": str(cfg["ml.xgboost.device"]),
              "random_state": 7, "subsample": 0.9, "colsample_bytree": 0.9,
              "min_child_weight": float(cfg["ml.xgboost.min_child_weight"])}
    if use_case.kind == "binary":
        params["objective"] = "binary:logistic"
        if pos_weight:
            params["scale_pos_weight"] = float(pos_weight)  # class imbalance: weigh the rare frauds up
    elif use_case.kind == "multiclass":
        params["objective"] = "multi:softprob"
    else:
        params["objective"] = "reg:logistic"  # a probability of default in [0, 1] from 0/1 outcomes
    return params


def spark_xgb(cfg: Config, use_case: UseCase, setting: dict, pos_weight: float | None = None):
    """The distributed XGBoost estimator of a use case (classifier, or regressor for PD)."""
    params = xgb_params(cfg, use_case, setting, pos_weight)
    params.pop("random_state")
    common = dict(features_col=list(use_case.features), label_col="label", num_workers=int(cfg["ml.xgboost.num_workers"]),
                  missing=float("nan"), seed=7, verbosity=0, verbose=False, **params)
    if use_case.kind != "pd":
        common.pop("objective")  # the classifier sets it from the label count (binary:logistic, multi:softprob)
    cls = SparkXGBRegressor if use_case.kind == "pd" else SparkXGBClassifier
    return cls(**common)


def spark_baseline(use_case: UseCase):
    """The baseline: median imputation, standardisation, logistic regression (multinomial for
    trading); for PD its probability of the positive class is the predicted PD."""
    feats = list(use_case.features)
    imputed = [f"_imp_{f}" for f in feats]
    return Pipeline(stages=[
        Imputer(inputCols=feats, outputCols=imputed, strategy="median"),
        VectorAssembler(inputCols=imputed, outputCol="_raw", handleInvalid="keep"),
        StandardScaler(inputCol="_raw", outputCol="_scaled", withMean=True, withStd=True),
        LogisticRegression(featuresCol="_scaled", labelCol="label", maxIter=200, regParam=1e-4,
                           family="multinomial" if use_case.kind == "multiclass" else "binomial",
                           probabilityCol="probability", predictionCol="prediction", rawPredictionCol="rawPrediction"),
    ])


def spark_gbt(use_case: UseCase, max_depth: int = 4, max_iter: int = 100):
    """pyspark.ml's GBTRegressor on 0/1 defaults, the second gradient-boosted PD model."""
    feats = list(use_case.features)
    imputed = [f"_imp_{f}" for f in feats]
    return Pipeline(stages=[
        Imputer(inputCols=feats, outputCols=imputed, strategy="median"),
        VectorAssembler(inputCols=imputed, outputCol="_raw", handleInvalid="keep"),
        GBTRegressor(featuresCol="_raw", labelCol="label", maxDepth=max_depth, maxIter=max_iter, stepSize=0.1,
                     seed=7, predictionCol="prediction"),
    ])


def native_xgb(cfg: Config, use_case: UseCase, setting: dict, pos_weight: float | None = None):
    """The same booster through xgboost's scikit-learn API, for per-fold fits on the driver."""
    params = xgb_params(cfg, use_case, setting, pos_weight)
    if use_case.kind == "pd":
        return xgb.XGBRegressor(n_jobs=2, **params)
    return xgb.XGBClassifier(n_jobs=2, **params)


def native_baseline(use_case: UseCase):
    """The baseline through scikit-learn (same steps as ``spark_baseline``)."""
    return make_pipeline(SimpleImputer(strategy="median"), preprocessing.StandardScaler(),
                         linear_model.LogisticRegression(max_iter=500, C=1e4))


def native_scores(model, use_case: UseCase, x: np.ndarray) -> np.ndarray:
    """Positive-class probability (binary, PD) or class probabilities (multi-class)."""
    if use_case.kind == "multiclass":
        return model.predict_proba(x)
    if use_case.kind == "pd" and not hasattr(model, "predict_proba"):
        return model.predict(x)
    return model.predict_proba(x)[:, 1]
