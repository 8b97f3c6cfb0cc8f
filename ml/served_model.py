"""The code of every registered finlake model: a booster whose ``predict`` gives what finlake
serves, the calibrated probability.

MLflow stores this file with each version (a model from code) together with three artifacts:
the booster (``booster.ubj``), its calibration map (``calibration.json``) and
``ml/calibration.py``, the one place that applies the map. So anyone loading a version through
``mlflow.pyfunc.load_model`` (model serving, a notebook, another team) gets the probabilities the
decision path and the scorer use, with nothing of finlake installed but this copy. The decision
threshold and what it applies to are in the model's metadata (``threshold``, ``threshold_on``).

``predict`` takes a DataFrame with the version's feature columns (others are ignored) and returns
one probability per row (``probability``; the PD for loan PD), or one column per class for a
multi-class model.
"""
from __future__ import annotations

import json

import mlflow
import pandas as pd
import xgboost as xgb
from mlflow.pyfunc import PythonModel

from ml.calibration import Calibration


class CalibratedBooster(PythonModel):
    def load_context(self, context) -> None:
        self.booster = xgb.Booster()
        self.booster.load_model(context.artifacts["booster"])
        with open(context.artifacts["calibration"]) as f:
            self.calibration = Calibration.from_dict(json.load(f))
        config = context.model_config
        self.features, self.classes = list(config["features"]), list(config.get("classes") or [])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        p = self.calibration.apply(self.booster.inplace_predict(model_input[self.features].astype("float64")))
        if self.classes:
            return pd.DataFrame(p, columns=self.classes, index=model_input.index)
        return pd.DataFrame({"probability": p}, index=model_input.index)


mlflow.models.set_model(CalibratedBooster())
