"""One session-scoped local Spark (Delta configured, temp warehouse) and one real Kafka broker,
started through the same code users run. State lives in a temp FINLAKE_HOME; the jar caches
are shared with the checkout (FINLAKE_CACHE) so a second run downloads nothing."""
from __future__ import annotations

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
        "spark.driver_memory=1g",
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


PYTHON = sys.executable
