"""One session-scoped local Spark (Delta configured, temp warehouse) and one real Kafka broker,
started through the same code users run. State lives in a temp FINLAKE_HOME; the jar caches
are shared with the checkout (FINLAKE_CACHE) so a second run downloads nothing."""
from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("FINLAKE_CACHE", str(ROOT / ".finlake" / "cache"))
os.environ.pop("FINLAKE_ENV", None)
os.environ.pop("FINLAKE_KAFKA_BOOTSTRAP", None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KAFKA_PORT = int(os.environ.get("FINLAKE_TEST_KAFKA_PORT") or free_port())
CONTROLLER_PORT = int(os.environ.get("FINLAKE_TEST_CONTROLLER_PORT") or free_port())


@pytest.fixture(scope="session")
def test_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("finlake_home")


@pytest.fixture(scope="session")
def overrides() -> list[str]:
    return [
        f"kafka.bootstrap_servers=127.0.0.1:{KAFKA_PORT}",
        f"kafka.controller_port={CONTROLLER_PORT}",
        "spark.shuffle_partitions=2",
        # The suite's shared session runs every test's queries for about an hour: with 1g the
        # gold card query of the last module ran out of execution memory once (BENCHMARKS.md).
        "spark.driver_memory=2g",
        "kafka.retention_check_ms=3000",   # the broker's cleaner runs often enough for a test to see it
        # jobs run in the test process open no metrics endpoint (tests/test_observe.py opens its own)
        "metrics.ports.stream=0", "metrics.ports.decide=0", "metrics.ports.score=0",
    ]


@pytest.fixture(scope="session")
def cfg(test_home, overrides):
    from lakehouse.config import load_config

    return load_config("local", overrides, home=test_home)


@pytest.fixture(scope="session")
def job_env(test_home) -> dict:
    """Environment for running a job in a subprocess against the test's state and broker."""
    env = dict(os.environ, FINLAKE_HOME=str(test_home), FINLAKE_KAFKA_BOOTSTRAP=f"127.0.0.1:{KAFKA_PORT}")
    env.pop("PYSPARK_GATEWAY_PORT", None)
    env.pop("MLFLOW_TRACKING_URI", None)  # a job finds its MLflow store under its own FINLAKE_HOME
    env.pop("PYSPARK_GATEWAY_SECRET", None)
    return env


@pytest.fixture(scope="session")
def spark(cfg):
    from lakehouse.catalog import Catalog
    from lakehouse.session import build_session

    session = build_session(cfg, app_name="finlake-tests")
    Catalog(cfg).register(session)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def kafka(cfg):
    from lakehouse.kafka.broker import LocalKafka

    broker = LocalKafka(cfg)
    broker.start()
    yield broker
    broker.stop()


ML_GRID = ["ml.search.folds=2", "ml.search.max_depth=[2, 4]", "ml.search.learning_rate=[0.3]", "ml.search.n_estimators=[30, 80]",
           "ml.search.class_weight=[balanced]",  # the calibration tests need scores inflated by the weight
           "ml.gbt.max_iter=20"]   # loan PD's compared GBTRegressor: 0.3 s an iteration


@pytest.fixture(scope="session")
def ml_cfg(spark, cfg, overrides, tmp_path_factory):
    """A separate FINLAKE_HOME (and topic prefix) with ~6 h of history: 40,000 events (3% fraud,
    loans boosted) through bronze, silver and gold; shared by the training and scoring tests."""
    from jobs import produce, stream
    from lakehouse.catalog import Catalog

    from lakehouse.config import load_config

    home = tmp_path_factory.mktemp("ml_home")
    mcfg = load_config("local", [*overrides, *ML_GRID, "security.pan_hmac_key_missing=generate", "kafka.topic_prefix=ml_"], home=home)
    args = produce.build_parser().parse_args([
        "--mode", "bronze", "--count", "40000", "--rate", "max", "--sim-rate", "2", "--seed", "21", "--fraud-rate", "0.03",
        "--mix", "transactions=0.55,market_ticks=0.2,user_events=0.1,bureau_updates=0.1,loan_applications=0.1", "--quiet"])
    Catalog(mcfg).register(spark)  # as every job does at start: declared tables exist, empty
    produce.run(spark, mcfg, args)
    stream.run(spark, mcfg, argparse.Namespace(streams="all", layers="silver,gold", available_now=True, timeout=None))
    Catalog(cfg).register(spark)  # table names point back at the suite's home; ML code reads by catalog location
    return mcfg


@pytest.fixture(scope="session")
def fraud_result(spark, ml_cfg):
    from ml.train import train_use_case

    return train_use_case(spark, ml_cfg, "fraud")


PYTHON = sys.executable
