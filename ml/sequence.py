"""The trading sequence challenger: a bidirectional LSTM over windows of a symbol's ticks (the
model of the study finlake answers), trained beside the xgboost champion and judged by the same
paired test.

- Rows and labels are the trading use case's (``ml.datasets.build_rows``), split by the same
  time cuts. Each row's input is the window of the last ``ml.sequence.window`` ticks of its
  symbol, ending at the row: gold's per-tick features, which are point in time, so a window
  holds nothing the row's own time did not know. Ticks before a symbol's first are padded.
- Keras 3 on the JAX backend, on the driver (ARCHITECTURE.md says why: install size and CPU
  speed, both measured). It lives behind the ``sequence`` extra.
- The registered model is an MLflow pyfunc: the Keras network, the training period's feature
  means and deviations and the window length travel inside it, so whoever loads it builds the
  windows and scales them the way training did.
- The challenger is registered under ``<prefix>-trading-sequence`` with the ``challenger``
  alias. The paired test against the xgboost champion, on the same test ticks, decides whether
  it *beats* the champion (tagged and logged). It never takes the serving champion's alias: the
  decision path keeps one tick of state per symbol and serves boosters; serving windows is not
  built.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from lakehouse.config import Config, ConfigError
from ml import registry

# Keras is the optional 'sequence' extra (``load_keras``). mlflow, Spark, ml.datasets, ml.evaluate
# and ml.train are imported in the functions that use them: +5 s at import together, and
# finlake train --model sequence loads this module to check the extra before Spark starts.

REGISTERED_SUFFIX = "trading-sequence"
EXTRA_HINT = "the sequence model needs the 'sequence' extra: pip install -e '.[sequence]' (make install does it)"


class SequenceUnavailable(RuntimeError):
    """Keras (and its JAX backend) is not installed."""


def load_keras():
    """Keras on the JAX backend (set before the first import; a user's other backend stays
    theirs if Keras was already imported)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError:
        raise SequenceUnavailable(EXTRA_HINT) from None
    return keras


# ---------------------------------------------------------------------------------------------
# Windows (pure)


def scaling(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of training rows, ignoring missing values (a
    feature with no spread, or no values, scales by 1 around 0)."""
    with np.errstate(all="ignore"):
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return mean, std


def tick_windows(frame: pd.DataFrame, features: list[str], length: int, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """For every row of ``frame`` (in its own order), the scaled features of the ``length`` ticks
    of its symbol ending at it, oldest first: shape (rows, length, features), float32.

    Ticks are ordered by event time, then event id. A window reaching before the symbol's first
    tick is padded with zeros (the training mean), as is a missing feature value."""
    if length < 1:
        raise ValueError(f"ml.sequence.window must be at least 1, got {length}")
    order = np.lexsort((frame["event_id"].to_numpy(), frame["event_time"].to_numpy(), frame["symbol"].to_numpy()))
    x = ((frame[features].to_numpy(dtype=float)[order] - mean) / std).astype("float32")
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    sym = frame["symbol"].to_numpy()[order]
    starts = np.r_[True, sym[1:] != sym[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(sym)), 0))   # index of the symbol's first tick
    back = np.arange(length - 1, -1, -1)                                        # steps back, oldest first
    idx = np.arange(len(sym))[:, None] - back[None, :]
    valid = idx >= first[:, None]
    out = np.where(valid[..., None], x[np.clip(idx, 0, None)], np.float32(0.0))
    windows = np.empty_like(out)
    windows[order] = out
    return windows


# ---------------------------------------------------------------------------------------------
# The network


def settings(cfg: Config) -> dict:
    """``ml.sequence`` as plain values, checked (one clear line on a bad one)."""
    s = dict(cfg.get("ml.sequence") or {})
    need = {"window": int, "hidden": int, "dropout": float, "epochs": int, "patience": int, "batch_size": int,
            "learning_rate": float, "seed": int, "max_rows": int}
    out = {}
    for k, kind in need.items():
        if k not in s:
            raise ValueError(f"ml.sequence.{k} is missing")
        try:
            out[k] = kind(s[k])
        except (TypeError, ValueError):
            raise ValueError(f"ml.sequence.{k}: expected a number, got {s[k]!r}") from None
    for k in ("window", "hidden", "epochs", "batch_size", "max_rows"):
        if out[k] < 1:
            raise ValueError(f"ml.sequence.{k} must be at least 1, got {out[k]}")
    if not 0 <= out["dropout"] < 1:
        raise ValueError(f"ml.sequence.dropout must be in [0, 1), got {out['dropout']}")
    return out


def build_network(length: int, n_features: int, n_classes: int, hidden: int, dropout: float, learning_rate: float, seed: int):
    """Bidirectional LSTM over the window -> dropout -> softmax over the classes."""
    keras = load_keras()
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((length, n_features), name="ticks")
    h = keras.layers.Bidirectional(keras.layers.LSTM(hidden), name="bilstm")(inputs)
    h = keras.layers.Dropout(dropout)(h)
    out = keras.layers.Dense(n_classes, activation="softmax", name="classes")(h)
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    return model


def fit_network(model, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, epochs: int, patience: int,
                batch_size: int, on_epoch: Callable[[int, dict], None] = lambda _e, _l: None) -> list[dict]:
    """Fit with early stopping on the validation loss (the best epoch's weights are kept);
    returns each epoch's losses."""
    keras = load_keras()
    history: list[dict] = []

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            entry = {"epoch": epoch + 1, "loss": float(logs["loss"]), "val_loss": float(logs["val_loss"])}
            history.append(entry)
            on_epoch(epoch + 1, entry)

    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    model.fit(x, y, validation_data=(x_val, y_val), epochs=epochs, batch_size=batch_size, shuffle=True,
              callbacks=[stop, Report()], verbose=0)
    return history


def predict(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=4096, verbose=0), dtype=float)


# ---------------------------------------------------------------------------------------------
# The registered model


def _python_model_class():
    import mlflow.pyfunc

    class TradingSequenceModel(mlflow.pyfunc.PythonModel):
        """Class probabilities of every tick in the input, each from the window of its symbol's
        ticks in the same input that end at it (pass the history that should fill the windows)."""

        def load_context(self, context):
            keras = load_keras()
            self.network = keras.saving.load_model(context.artifacts["network"])
            self.spec = json.loads(Path(context.artifacts["spec"]).read_text())

        def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
            s = self.spec
            x = tick_windows(model_input, s["features"], s["window"], np.asarray(s["mean"]), np.asarray(s["std"]))
            return pd.DataFrame(predict(self.network, x), columns=[f"p_{c}" for c in s["classes"]], index=model_input.index)

    return TradingSequenceModel


def log_sequence_model(client, network, spec: dict, reg_name: str, example: pd.DataFrame, tags: dict[str, str]) -> str:
    """Log the network and its window spec as a pyfunc to the active run, register a version of
    ``reg_name`` and tag it; returns the version number."""
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    model = _python_model_class()()
    model.network, model.spec = network, spec   # what load_context reads back from the artifacts
    with tempfile.TemporaryDirectory() as tmp:
        net_path, spec_path = Path(tmp) / "network.keras", Path(tmp) / "spec.json"
        network.save(net_path)
        spec_path.write_text(json.dumps(spec))
        signature = infer_signature(example, model.predict(None, example))
        return registry.register_logged(client, reg_name, tags, lambda: mlflow.pyfunc.log_model(
            name="model", python_model=model, registered_model_name=reg_name,
            artifacts={"network": str(net_path), "spec": str(spec_path)}, input_example=example, signature=signature))


def load_sequence_model(name: str, version_or_alias: str):
    """A registered sequence model as an MLflow pyfunc (``predict(ticks) -> class probabilities``)."""
    import mlflow.pyfunc

    load_keras()
    ref = f"models:/{name}@{version_or_alias}" if not str(version_or_alias).isdigit() else f"models:/{name}/{version_or_alias}"
    return mlflow.pyfunc.load_model(ref)


# ---------------------------------------------------------------------------------------------
# Train, judge against the champion, register


def train_sequence(spark, cfg: Config, step: Callable[[str], None] = lambda _msg: None) -> dict:
    """Train the trading sequence challenger on the trading use case's rows and time split,
    judge it beside the xgboost champion (scored on the same test ticks) and the ceiling, log
    and register it; returns the result (also written to the training report folder)."""
    import mlflow
    from pyspark.sql import functions as F

    from lakehouse.catalog import Catalog
    from ml import evaluate as ev
    from ml.datasets import USE_CASES, TrainingDataError, build_rows, time_split
    from ml.train import MIN_ROWS, _flat_metrics, _test_scores, judge, versus_champion

    try:
        s = settings(cfg)
        use_case = USE_CASES["trading"].configured(cfg)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    load_keras()   # the extra is there, before any Spark work
    started = time.perf_counter()
    client = registry.connect(cfg)
    champ_name = registry.registered_name(cfg, use_case.registered_name)
    champion = registry.alias_version(client, champ_name, registry.CHAMPION)
    if champion is None:
        raise TrainingDataError(f"trading: no xgboost champion ({champ_name}@champion) to judge the sequence model against; "
                                f"train it first: finlake train --use-case trading")
    features = list(use_case.features)

    step("building the training set")
    rows, lineage = build_rows(spark, Catalog(cfg), use_case, None, float(cfg["ml.trading.flat_bps"]))
    total = rows.count()
    if total == 0:
        raise TrainingDataError("trading: no labelled ticks in gold.market_features; produce events and run the pipeline first")
    kept_from = None
    if total > s["max_rows"]:   # the most recent ticks: a sample would break the windows
        kept_from = rows.orderBy(F.col("event_time").desc()).limit(s["max_rows"]).agg(F.min("event_time")).first()[0]
        rows = rows.where(F.col("event_time") >= F.lit(kept_from))
    split = time_split(rows, float(cfg["ml.split.train"]), float(cfg["ml.split.validation"]), float(cfg["ml.split.embargo_s"]))
    truth_cols = [c for c in rows.columns if c.startswith("truth_")]
    frame = rows.select("event_id", "event_time", "symbol", *features, "label", *truth_cols,
                        split.period().alias("period")).toPandas()
    counts = frame["period"].value_counts().to_dict()
    for period, need in MIN_ROWS.items():
        if counts.get(period, 0) < need:
            raise TrainingDataError(f"trading: the {period} period has {counts.get(period, 0)} rows, fewer than {need}; "
                                    f"produce more history (jobs/produce.py) and run the pipeline")

    step(f"building windows of {s['window']} ticks")
    is_train = (frame["period"] == "train").to_numpy()
    mean, std = scaling(frame.loc[is_train, features].to_numpy(dtype=float))
    windows = tick_windows(frame, features, s["window"], mean, std)
    parts = {p: (frame["period"] == p).to_numpy() for p in ("train", "validation", "test")}
    val_pd = frame[parts["validation"]].reset_index(drop=True)
    test_pd = frame[parts["test"]].reset_index(drop=True)
    y = {p: frame.loc[m, "label"].to_numpy(dtype=int) for p, m in parts.items()}

    network = build_network(s["window"], len(features), len(use_case.classes), s["hidden"], s["dropout"],
                            s["learning_rate"], s["seed"])
    t0 = time.perf_counter()
    history = fit_network(network, windows[parts["train"]], y["train"], windows[parts["validation"]], y["validation"],
                          s["epochs"], s["patience"], s["batch_size"],
                          lambda e, h: step(f"epoch {e}/{s['epochs']}: loss {h['loss']:.4f}, validation {h['val_loss']:.4f}"))
    fit_s = time.perf_counter() - t0
    best_epoch = int(min(history, key=lambda h: h["val_loss"])["epoch"])

    step("judging on the test period beside the xgboost champion")
    seq_test = predict(network, windows[parts["test"]])
    decision, champ_test = versus_champion(client, cfg, use_case, champ_name, test_pd, seq_test)
    if champ_test is None:
        raise TrainingDataError(f"trading: the champion {champ_name} v{champion.version} needs features the ticks lack")
    metrics = {"sequence": judge(use_case, val_pd, test_pd, None, seq_test),
               f"xgboost_champion_v{champion.version}": judge(use_case, val_pd, test_pd, None, champ_test)}
    truth = test_pd[["truth_p_down", "truth_p_flat", "truth_p_up"]].to_numpy(dtype=float) if truth_cols else None
    ceiling = truth is not None and bool(np.isfinite(truth).all())
    if ceiling:
        metrics["ceiling"] = judge(use_case, val_pd, test_pd, None, truth)

    step("logging to MLflow and registering")
    champ_key = f"xgboost_champion_v{champion.version}"
    seq_scores = {"sequence": (None, seq_test), "xgboost_champion": (None, champ_test)}
    figures = {"confusion_sequence.png": ev.confusion_figure(metrics["sequence"]["confusion"], use_case.classes,
                                                             "Trading signal: sequence (BiLSTM)"),
               f"confusion_{champ_key}.png": ev.confusion_figure(metrics[champ_key]["confusion"], use_case.classes,
                                                                 f"Trading signal: xgboost champion v{champion.version}"),
               "learning_curve.png": _learning_curve(history, best_epoch)}
    report_dir = cfg.path("paths.reports") / "training" / "trading_sequence"
    report_dir.mkdir(parents=True, exist_ok=True)
    for fname, fig in figures.items():
        fig.savefig(report_dir / fname, dpi=110)
    reg_name = registry.registered_name(cfg, REGISTERED_SUFFIX)
    spec = {"features": features, "window": s["window"], "mean": mean.tolist(), "std": std.tolist(),
            "classes": list(use_case.classes)}
    beats = bool(decision.promote)
    with mlflow.start_run(experiment_id=registry.experiment(cfg, client, "trading"),
                          run_name=f"trading-sequence-{time.strftime('%Y%m%dT%H%M%S')}") as run:
        mlflow.log_params({"use_case": "trading", "model": "Keras BiLSTM (JAX backend)", **{f"sequence_{k}": v for k, v in s.items()},
                           "best_epoch": best_epoch, "epochs_run": len(history), "n_features": len(features),
                           "rows_total": total, "kept_from": str(kept_from) if kept_from is not None else "all",
                           **{f"rows_{p}": counts.get(p, 0) for p in ("train", "validation", "test", "embargo")},
                           **{f"split_{k}": v for k, v in split.to_dict().items()},
                           "compared_with": f"{champ_name} v{champion.version} (champion)",
                           "ceiling": "available" if ceiling else "not available (no generator truth)"})
        for label, m in metrics.items():
            mlflow.log_metrics(_flat_metrics(f"test_{label}", m))
        mlflow.log_metrics({"train_seconds_sequence": fit_s, "vs_champion_p_value": float(decision.p_value)})
        for h in history:
            mlflow.log_metrics({"loss": h["loss"], "val_loss": h["val_loss"]}, step=h["epoch"])
        mlflow.log_dict({"features": features}, "features.json")
        mlflow.log_dict({"tables": lineage, "split": split.to_dict(), "kept_from": str(kept_from)}, "lineage.json")
        mlflow.log_dict(metrics, "metrics.json")
        mlflow.log_dict(decision.to_dict(), "vs_champion.json")
        mlflow.log_text(_test_scores(use_case, test_pd, seq_scores).to_csv(index=False), "test_scores.csv")
        for fname, fig in figures.items():
            mlflow.log_figure(fig, f"figures/{fname}")
        example = test_pd[["event_id", "event_time", "symbol", *features]].head(5)
        tags = {"features": json.dumps(features), "use_case": "trading", "run_id": run.info.run_id, "kind": "multiclass",
                "classes": json.dumps(list(use_case.classes)), "window": str(s["window"]), "flavor": "pyfunc (keras, jax)",
                "beats_champion": str(beats).lower(), "vs_champion": json.dumps(decision.to_dict())}
        version = log_sequence_model(client, network, spec, reg_name, example, tags)
        client.set_registered_model_alias(reg_name, registry.CHALLENGER, version)
        mlflow.set_tags({"beats_champion": str(beats).lower(), "registered_version": version})
        run_id = run.info.run_id
    for fig in figures.values():
        fig.clear()
    result = {
        "use_case": "trading", "model": {"name": reg_name, "version": version, "run_id": run_id, "alias": registry.CHALLENGER},
        "champion": {"name": champ_name, "version": str(champion.version)},
        "rows": {p: counts.get(p, 0) for p in ("train", "validation", "test", "embargo")}, "rows_total": total,
        "settings": s, "best_epoch": best_epoch, "history": history, "metrics": metrics, "ceiling_available": ceiling,
        "vs_champion": {"metric": decision.metric, "test": decision.test, "p_value": float(decision.p_value),
                        "alpha": decision.alpha, "beats_champion": beats, "reason": decision.reason},
        "seconds": {"fit": round(fit_s, 1), "total": round(time.perf_counter() - started, 1)},
        "split": split.to_dict(), "lineage": lineage, "report_dir": str(report_dir),
    }
    (report_dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def _learning_curve(history: list[dict], best_epoch: int):
    from ml.evaluate import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([h["epoch"] for h in history], [h["loss"] for h in history], label="training")
    ax.plot([h["epoch"] for h in history], [h["val_loss"] for h in history], label="validation")
    ax.axvline(best_epoch, color="grey", lw=0.8, ls="--", label=f"kept: epoch {best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_title("Trading sequence model: learning curve")
    ax.legend()
    fig.tight_layout()
    return fig
