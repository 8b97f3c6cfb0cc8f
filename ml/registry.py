"""MLflow tracking and the model registry: experiments per use case, registered models with
``champion`` / ``challenger`` aliases, and the promotion rule.

The rule: every new version gets ``challenger``. It takes ``champion`` only when, on the test
period of its own training run (the most recent rows), both hold against the current champion
scored on the same rows:
- its promotion metric is better by more than ``ml.promotion.min_delta``;
- a paired test says so at ``ml.promotion.alpha`` (one-sided p below alpha): DeLong's test for
  ROC-AUC, a paired bootstrap for the other metrics (``ml.evaluate.promotion_test``).
With no champion yet, the first version becomes champion. The decision, both metrics and the
p-value are logged to the run and tagged on the version.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from lakehouse.config import Config
from ml.calibration import ARTIFACT, NONE, Calibration

# mlflow is imported in the functions that use it: +4 s at import, and serving start-up (finlake
# decide / score, --help included) loads this module; ``connect`` also sets mlflow's environment first.

CHAMPION, CHALLENGER = "champion", "challenger"

for _name in ("mlflow", "alembic"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def registered_name(cfg: Config, use_case_suffix: str) -> str:
    return f"{cfg['ml.mlflow.prefix']}-{use_case_suffix}"


def tracking_uri(cfg: Config) -> str:
    return str(cfg["ml.mlflow.tracking_uri"])


def artifact_root(cfg: Config) -> Path:
    """Artifacts live beside the SQLite store under FINLAKE_HOME (never the working directory)."""
    return cfg.path("paths.mlflow_db").parent / "artifacts"


def connect(cfg: Config):
    """Point MLflow at the configured store (creating the SQLite folder) and return a client."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # A registered model names its requirements itself (log_booster); the project's uv files
    # in the working directory are not the model's.
    os.environ.setdefault("MLFLOW_UV_AUTO_DETECT", "false")
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    import mlflow
    from mlflow import MlflowClient

    # MLflow logs its store migrations and registrations at INFO to the console; finlake's
    # console carries only its own steps (the run, version and alias are in the job's output).
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    uri = tracking_uri(cfg)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    # MLflow also exports the URI to the environment for child processes; ours resolve their
    # own store from their own FINLAKE_HOME, so the environment is left as it was.
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment(cfg: Config, client, use_case: str) -> str:
    """The experiment of a use case (created with its artifacts under FINLAKE_HOME)."""
    name = f"{cfg['ml.mlflow.prefix']}-{use_case}"
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = artifact_root(cfg) / name
    if tracking_uri(cfg).startswith("sqlite:"):
        location.mkdir(parents=True, exist_ok=True)
        return client.create_experiment(name, artifact_location=location.as_uri())
    return client.create_experiment(name)


def alias_version(client, name: str, alias: str):
    """The model version holding ``alias``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    metric: str
    higher_is_better: bool
    challenger_value: float
    champion_value: float | None
    champion_version: str | None
    min_delta: float
    p_value: float | None = None
    alpha: float | None = None
    test: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def decide(metric: str, higher_is_better: bool, challenger: float, champion: float | None,
           champion_version: str | None, min_delta: float, p_value: float | None = None, alpha: float | None = None,
           test: str | None = None) -> Decision:
    """The promotion rule as a pure function of the two metrics on the same test rows and the
    paired test's one-sided p-value (``alpha`` None: the metric alone decides)."""
    extra = dict(p_value=p_value, alpha=alpha, test=test)
    if champion_version is None:
        return Decision(True, "no champion yet", metric, higher_is_better, challenger, None, None, min_delta, **extra)
    if champion is None:
        return Decision(False, f"champion v{champion_version} could not be scored on this test period; kept",
                        metric, higher_is_better, challenger, None, champion_version, min_delta, **extra)
    gain = (challenger - champion) if higher_is_better else (champion - challenger)
    better = gain > min_delta
    significant = alpha is None or (p_value is not None and p_value < alpha)
    promote = better and significant
    said = "" if alpha is None else f", {test} one-sided p={'n/a' if p_value is None else f'{p_value:.3g}'}"
    if promote:
        why = "promoted"
    elif not better:
        why = f"kept: not better by more than {min_delta}"
    else:
        why = f"kept: better, but not significantly (p >= alpha {alpha})"
    return Decision(promote, f"challenger {metric} {challenger:.5f} vs champion v{champion_version} {champion:.5f}{said}; {why}",
                    metric, higher_is_better, challenger, champion, champion_version, min_delta, **extra)


def set_aliases(client, name: str, version: str, decision: Decision) -> None:
    """``challenger`` always moves to the new version; ``champion`` only on a promote decision."""
    client.set_registered_model_alias(name, CHALLENGER, version)
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "promotion", json.dumps(decision.to_dict()))


def version_features(client, name: str, version) -> list[str]:
    """The feature columns a registered version expects, in order."""
    return json.loads(client.get_model_version(name, str(version.version if hasattr(version, "version") else version)).tags["features"])


def register_logged(client, reg_name: str, tags: dict[str, str], log) -> str:
    """Run ``log()`` (an MLflow ``log_model`` call registering ``reg_name``), tag the new version
    and return its number. MLflow prints "Successfully registered model ..." / "Created version
    ..." to stderr; the jobs report the registered version themselves (a quiet console). Errors
    still raise."""
    with contextlib.redirect_stderr(io.StringIO()):
        info = log()
    version = str(info.registered_model_version)
    for k, v in tags.items():
        client.set_model_version_tag(reg_name, version, k, v)
    return version


BOOSTER_ARTIFACT = "booster.ubj"


def log_booster(client, booster, reg_name: str, example, example_scores, tags: dict[str, str],
                calibration: Calibration = NONE, classes: tuple[str, ...] = (), metadata: dict | None = None) -> str:
    """Log a booster to the active run as a model whose ``predict`` gives calibrated
    probabilities (``ml/served_model.py``, with the booster, ``calibration`` and the code that
    applies it), with its signature, input example and ``metadata`` (the decision threshold);
    register it as a new version of ``reg_name``, tag the version; returns the version number."""
    import shutil
    import tempfile

    import mlflow
    import numpy as np
    import pandas as pd
    import xgboost as xgb
    from mlflow.models import infer_signature

    scores = np.asarray(example_scores, dtype=float)
    output = pd.DataFrame(scores, columns=list(classes)) if scores.ndim == 2 else pd.DataFrame({"probability": scores})
    here = Path(__file__).parent
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        booster.save_model(folder / BOOSTER_ARTIFACT)
        (folder / ARTIFACT).write_text(json.dumps(calibration.to_dict()))
        code = folder / "code" / "ml"
        code.mkdir(parents=True)
        (code / "__init__.py").write_text("")
        shutil.copy(here / "calibration.py", code / "calibration.py")
        return register_logged(client, reg_name, tags, lambda: mlflow.pyfunc.log_model(
            name="model", python_model=str(here / "served_model.py"), code_paths=[str(code)],
            artifacts={"booster": str(folder / BOOSTER_ARTIFACT), "calibration": str(folder / ARTIFACT)},
            model_config={"features": list(example.columns), "classes": list(classes)},
            pip_requirements=[f"mlflow=={mlflow.__version__}", f"xgboost=={xgb.__version__}", f"numpy=={np.__version__}",
                              f"pandas=={pd.__version__}"],
            registered_model_name=reg_name, input_example=example, signature=infer_signature(example, output),
            metadata=metadata))


def load_booster(name: str, version_or_alias: str):
    """The registered XGBoost booster of a version (``"3"``) or an alias (``"champion"``): the
    served model's booster artifact, or a version of an earlier finlake logged as
    ``mlflow.xgboost``."""
    import mlflow
    import xgboost as xgb

    ref = f"models:/{name}@{version_or_alias}" if not str(version_or_alias).isdigit() else f"models:/{name}/{version_or_alias}"
    local = Path(mlflow.artifacts.download_artifacts(ref))
    stored = local / "artifacts" / BOOSTER_ARTIFACT
    if stored.exists():
        booster = xgb.Booster()
        booster.load_model(str(stored))
        return booster
    import mlflow.xgboost

    model = mlflow.xgboost.load_model(str(local))
    return model.get_booster() if hasattr(model, "get_booster") else model


def load_calibration(client, name: str, version) -> Calibration:
    """The calibration map of a registered version (identity for a version without one)."""
    import mlflow

    tags = client.get_model_version(name, str(version.version if hasattr(version, "version") else version)).tags
    if tags.get("calibration", "none") == "none" or "run_id" not in tags:
        return NONE
    return Calibration.from_dict(mlflow.artifacts.load_dict(f"runs:/{tags['run_id']}/{ARTIFACT}"))
