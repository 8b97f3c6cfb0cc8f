"""The one place a SparkSession is built: Delta, the Kafka connector, our Python, sized by config.

``spark_properties(cfg)`` is pure (config in, Spark properties out) so every profile, the GPU
one included, can be checked without the hardware; ``build_session`` applies it.
``submit_args(cfg)`` gives the same settings as ``spark-submit`` arguments.
"""
from __future__ import annotations

import os
import sys
from typing import Mapping

from lakehouse.config import Config

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"

# Properties Spark reads only when the JVM starts; spark-submit passes them on its command line.
LAUNCH_ONLY = ("spark.jars.packages", "spark.jars.ivy", "spark.driver.memory", "spark.master")


def spark_properties(cfg: Config, python: str | None = None) -> dict[str, str]:
    """Every Spark property finlake sets for this config, as strings."""
    python = python or str(cfg["spark.python"] or "") or sys.executable
    props: dict[str, str] = {
        "spark.master": str(cfg["spark.master"]),
        "spark.app.name": str(cfg["spark.app_name"]),
        "spark.driver.memory": str(cfg["spark.driver_memory"]),
        "spark.jars.packages": ",".join(cfg["spark.packages"]),
        "spark.jars.ivy": str(cfg.path("paths.cache") / "ivy"),
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.warehouse.dir": str(cfg["paths.warehouse"]),
        "spark.sql.shuffle.partitions": str(cfg["spark.shuffle_partitions"]),
        "spark.default.parallelism": str(cfg["spark.shuffle_partitions"]),
        "spark.pyspark.python": python,
        "spark.pyspark.driver.python": python,
        "spark.executorEnv.PYSPARK_PYTHON": python,
    }
    for key, value in (cfg["spark.conf"] or {}).items():
        props[str(key)] = _as_spark_value(value)
    return props


def _as_spark_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def submit_args(cfg: Config, python: str | None = None) -> list[str]:
    """``spark-submit`` arguments (without --master, which the caller chooses) for this config."""
    props = spark_properties(cfg, python)
    args = ["--packages", props.pop("spark.jars.packages"), "--driver-memory", props.pop("spark.driver.memory")]
    props.pop("spark.master")
    props.pop("spark.app.name")
    for key, value in props.items():
        args += ["--conf", f"{key}={value}"]
    return args


def under_spark_submit() -> bool:
    """True when this Python process was launched by spark-submit (the JVM already runs)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_session(cfg: Config, app_name: str | None = None, extra: Mapping[str, str] | None = None):
    """Build (or join) the SparkSession for ``cfg``.

    Under spark-submit the launch-time properties (master, packages, driver memory) came on
    the command line and are left alone, so ``--master`` decides where the job runs.
    """
    from pyspark.sql import SparkSession

    props = spark_properties(cfg)
    if app_name:
        props["spark.app.name"] = app_name
    props.update(extra or {})
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    os.environ.setdefault("PYSPARK_PYTHON", props["spark.pyspark.python"])
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", props["spark.pyspark.driver.python"])
    cfg.path("paths.cache").mkdir(parents=True, exist_ok=True)
    if "://" not in str(cfg["paths.warehouse"]):
        cfg.path("paths.warehouse").mkdir(parents=True, exist_ok=True)
    if props.get("spark.master", "").startswith("local"):
        # Keep a laptop's Spark on loopback (and quiet about the hostname it resolves).
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder
    if under_spark_submit():
        props = {k: v for k, v in props.items() if k not in LAUNCH_ONLY}
    for key, value in props.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(str(cfg["spark.log_level"]))
    return spark
