"""The one place a SparkSession is built: Delta, the Kafka connector, our Python, sized by config.

``spark_properties(cfg)`` is pure (config in, Spark properties out) so every profile, the GPU
one included, can be checked without the hardware; ``build_session`` fetches the jars it names
(``lakehouse.jvm``) and applies it. ``submit_args(cfg)`` gives the same settings as
``spark-submit`` arguments. Jars travel as cached files (``spark.jars``), never as per-session
package resolution: see ``lakehouse.jvm`` for why.
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Mapping

from lakehouse.config import Config, ConfigError
from lakehouse.jvm import ensure_jars, jar_specs, register_functions, udf_jar_path

# pyspark is imported where used: ~0.6 s, and every finlake command imports this module at start (jobs.common).

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"

# Properties Spark reads only when the JVM starts; spark-submit passes them on its command line.
LAUNCH_ONLY = ("spark.jars", "spark.driver.memory", "spark.master", "spark.driver.extraJavaOptions", "spark.driver.extraClassPath")
# Set on local masters only: executors elsewhere may lack finlake, and a cluster's file system
# is not the laptop's.
LOCAL_ONLY = ("spark.python.daemon.module", "spark.hadoop.fs.file.impl", "spark.hadoop.fs.AbstractFileSystem.file.impl",
              "spark.driver.extraClassPath")


def spark_properties(cfg: Config, python: str | None = None, jars: list[str] | None = None) -> dict[str, str]:
    """Every Spark property finlake sets for this config, as strings. ``jars`` lists the jar
    files (``lakehouse.jvm.ensure_jars``); without it the folder's glob stands in."""
    python = python or str(cfg["spark.python"] or "") or sys.executable
    props: dict[str, str] = {
        "spark.master": str(cfg["spark.master"]),
        "spark.app.name": str(cfg["spark.app_name"]),
        "spark.driver.memory": str(cfg["spark.driver_memory"]),
        "spark.jars": ",".join(jars if jars is not None else jar_specs(cfg)),
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.warehouse.dir": str(cfg["paths.warehouse"]),
        "spark.sql.shuffle.partitions": str(cfg["spark.shuffle_partitions"]),
        "spark.default.parallelism": str(cfg["spark.shuffle_partitions"]),
        "spark.pyspark.python": python,
        "spark.pyspark.driver.python": python,
        "spark.executorEnv.PYSPARK_PYTHON": python,
    }
    if str(cfg["spark.master"]).startswith("local"):
        # Our daemon skips re-reading Spark's zips on every task (see lakehouse/pydaemon.py).
        props["spark.python.daemon.module"] = "lakehouse.pydaemon"
        # Without Hadoop's native library, its local file system forks chmod for each file it
        # creates and readlink for each rename: every checkpoint, state and Delta log file paid
        # for child processes on the batch's critical path. Ours does both with java.nio
        # (lakehouse/jvm/src/finlake/FastLocalFileSystem.java).
        props["spark.hadoop.fs.file.impl"] = "finlake.FastLocalFileSystem"
        props["spark.hadoop.fs.AbstractFileSystem.file.impl"] = "finlake.FastLocalFileSystem$Fs"
        # Hadoop loads the file system class while the JVM starts, before spark.jars are added.
        props["spark.driver.extraClassPath"] = str(udf_jar_path(cfg))
    if not cfg["spark.console_log"]:
        props["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{log4j_file(cfg)}"
    if cfg["spark.scheduler_pools"]:
        props["spark.scheduler.mode"] = "FAIR"
        props["spark.scheduler.allocation.file"] = f"file:{pools_file(cfg)}"
    for key, value in (cfg["spark.conf"] or {}).items():
        props[str(key)] = _as_spark_value(value)
    return props


def log4j_file(cfg: Config) -> Path:
    return cfg.path("paths.logs") / "spark-log4j2.properties"


def write_log4j(cfg: Config) -> Path:
    """Spark's log4j2 settings: everything to ``<logs>/spark.log``, nothing to the console."""
    path = log4j_file(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([
        "rootLogger.level=WARN",
        "rootLogger.appenderRef.file.ref=FILE",
        "appender.file.type=RollingFile",
        "appender.file.name=FILE",
        f"appender.file.fileName={path.parent}/spark.log",
        f"appender.file.filePattern={path.parent}/spark.log.%i",
        "appender.file.layout.type=PatternLayout",
        "appender.file.layout.pattern=%d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex",
        "appender.file.policies.type=Policies",
        "appender.file.policies.size.type=SizeBasedTriggeringPolicy",
        "appender.file.policies.size.size=50MB",
        "appender.file.strategy.type=DefaultRolloverStrategy",
        "appender.file.strategy.max=3",
        # Streaming's per-batch notices ("falling behind", AQE not supported) are not news.
        "logger.stream.name=org.apache.spark.sql.execution.streaming",
        "logger.stream.level=ERROR",
        "",
    ]))
    return path


def pools_file(cfg: Config) -> Path:
    return cfg.path("paths.home") / "spark" / "fairscheduler.xml"


def write_pools(cfg: Config) -> Path | None:
    """Spark's fair-scheduler pools from ``spark.scheduler_pools`` (name -> weight, min_share,
    mode). A pool with tasks waiting and fewer running than its ``min_share`` takes the next free
    task slot before any other pool; beyond that, slots are shared in proportion to ``weight``.
    ``mode``: how the pool's own jobs share its slots, FIFO (the first submitted first, Spark's
    default) or FAIR (each running job in turn). The pool named ``default`` is the one every
    query without a pool runs in."""
    pools = cfg["spark.scheduler_pools"] or {}
    if not pools:
        return None
    lines = ['<?xml version="1.0"?>', "<allocations>"]
    for name, spec in pools.items():
        spec = spec or {}
        if not isinstance(spec, dict):
            raise ConfigError(f"spark.scheduler_pools.{name} must be a mapping (weight, min_share, mode), got {spec!r}")
        unknown = set(spec) - {"weight", "min_share", "mode"}
        if unknown:
            raise ConfigError(f"spark.scheduler_pools.{name}: unknown setting(s) {sorted(unknown)} (weight, min_share, mode)")
        try:
            weight, share = int(spec.get("weight", 1)), int(spec.get("min_share", 0))
        except (TypeError, ValueError):
            raise ConfigError(f"spark.scheduler_pools.{name}: weight and min_share must be whole numbers") from None
        if weight < 1 or share < 0:
            raise ConfigError(f"spark.scheduler_pools.{name}: weight must be >= 1 and min_share >= 0")
        mode = str(spec.get("mode", "FIFO")).upper()
        if mode not in ("FIFO", "FAIR"):
            raise ConfigError(f"spark.scheduler_pools.{name}: mode must be FIFO or FAIR, got {spec.get('mode')!r}")
        lines += [f'  <pool name="{name}">', f"    <schedulingMode>{mode}</schedulingMode>",
                  f"    <weight>{weight}</weight>", f"    <minShare>{share}</minShare>", "  </pool>"]
    path = pools_file(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*lines, "</allocations>", ""]))
    return path


@contextmanager
def scheduler_pool(spark, pool: str | None):
    """Run what starts inside in the fair-scheduler pool ``pool`` (``spark.scheduler_pools``; a
    query's thread inherits this thread's pool when it starts). Empty: the default pool."""
    sc = spark.sparkContext
    before = sc.getLocalProperty("spark.scheduler.pool")
    if pool:
        sc.setLocalProperty("spark.scheduler.pool", pool)
    try:
        yield
    finally:
        sc.setLocalProperty("spark.scheduler.pool", before)


def side_by_side(fn: Callable, items: Iterable, threads: int = 4) -> list:
    """``fn`` over ``items`` in ``threads`` driver threads, results in order. For work that is
    a Delta snapshot and a small job per item (registering tables, counting them), which waits
    on the driver more than it computes: one at a time, 21 counts took 11-12 s."""
    items = list(items)
    if len(items) < 2:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(min(threads, len(items))) as pool:
        return list(pool.map(fn, items))


def _as_spark_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def submit_args(cfg: Config, python: str | None = None, jars: list[str] | None = None, master: str | None = None) -> list[str]:
    """``spark-submit`` arguments (without --master, which the caller chooses) for this config."""
    props = spark_properties(cfg, python, jars)
    if not (master or props["spark.master"]).startswith("local"):
        for key in LOCAL_ONLY:
            props.pop(key, None)
    args = ["--jars", props.pop("spark.jars"), "--driver-memory", props.pop("spark.driver.memory")]
    props.pop("spark.master")
    props.pop("spark.app.name")
    for key, value in props.items():
        args += ["--conf", f"{key}={value}"]
    return args


def launch_master() -> str:
    """The master spark-submit was given (under spark-submit), else ''."""
    from pyspark import SparkConf

    return SparkConf().get("spark.master", "") if under_spark_submit() else ""


def under_spark_submit() -> bool:
    """True when this Python process was launched by spark-submit (the JVM already runs)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _launch_jvm_quietly(cfg: Config, props: Mapping[str, str]) -> None:
    """Start Spark's JVM (unless one runs) with its stdout and stderr in ``<logs>/spark-jvm.log``.

    What the java launcher prints before log4j starts (Spark 4.1's ``WARNING: Using incubator
    modules: jdk.incubator.vector``) and anything a library writes to the JVM's stderr would
    otherwise reach the console. The command and the properties are pyspark's own
    (``launch_gateway``); only where the output goes differs."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._active_spark_context is not None or SparkContext._gateway is not None:
        return
    conf = SparkConf(loadDefaults=False)
    for key, value in props.items():
        conf.set(key, value)
    logs = cfg.path("paths.logs")
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "spark-jvm.log", "ab") as out:   # the child keeps its own copy of the descriptor
        gateway = launch_gateway(conf, popen_kwargs={"stdout": out, "stderr": out})
    SparkContext(conf=conf, gateway=gateway)


def build_session(cfg: Config, app_name: str | None = None, extra: Mapping[str, str] | None = None):
    """Build (or join) the SparkSession for ``cfg``.

    Under spark-submit the launch-time properties (master, packages, driver memory) came on
    the command line and are left alone, so ``--master`` decides where the job runs.
    """
    from pyspark.sql import SparkSession

    jars = None
    if not under_spark_submit():  # spark-submit brought the jars (--jars) and the log settings
        jars = ensure_jars(cfg)
        write_log4j(cfg)
    write_pools(cfg)
    props = spark_properties(cfg, jars=jars)
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
        if not launch_master().startswith("local"):
            for key in LOCAL_ONLY:
                props.pop(key, None)
    for key, value in props.items():
        builder = builder.config(key, value)
    if not under_spark_submit() and not cfg["spark.console_log"]:
        _launch_jvm_quietly(cfg, props)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(str(cfg["spark.log_level"]))
    register_functions(spark)
    return spark
