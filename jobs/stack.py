"""Manage the local services: the Kafka broker (and its jars); build finlake's own jar.

    python -m jobs.stack up | down | status | fetch
    python -m jobs.stack jar --out dist    # finlake-jvm.jar, to attach as a cluster library (databricks.yml)
    python -m jobs.stack rapids --env gpu  # does the profile's RAPIDS jar carry a shim for this pyspark?
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from jobs import common
from lakehouse.jars import artifact_url, remote_jar_entries, shim_name, spark_shims
from lakehouse.jvm import ensure_udf_jar
from lakehouse.kafka.broker import LocalKafka
from lakehouse.kafka.clients import admin_client


JAR_NAME = "finlake-jvm.jar"


def rapids_support(cfg, spark_version: str, entries_of=remote_jar_entries) -> dict:
    """The profile's RAPIDS Accelerator jar against a Spark release: the jar runs only on the
    Spark versions it has a shim folder for, read from its central directory on Maven Central
    (a few megabytes of a jar of about 1 GB)."""
    coords = [c for c in cfg["spark.packages"] if c.partition(":")[2].startswith("rapids-4-spark")]
    if not coords:
        common.fail(f"env '{cfg.env}' loads no RAPIDS jar (spark.packages has no com.nvidia:rapids-4-spark_*): the GPU profile is --env gpu")
    shim = shim_name(spark_version)
    shims = spark_shims(entries_of(artifact_url(coords[0])))
    if shim not in shims:
        common.fail(f"{coords[0]} has no shim for Spark {spark_version} ({shim}); it carries {', '.join(shims) or 'none'}", code=1)
    return {"rapids": coords[0], "spark": spark_version, "shim": shim, "shims": shims}


def run(_spark, cfg, args) -> dict:
    if args.action == "rapids":
        import pyspark

        return rapids_support(cfg, pyspark.__version__)
    if args.action == "jar":
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ensure_udf_jar(cfg), out / JAR_NAME)
        return {"jar": str(out / JAR_NAME)}
    if not cfg["kafka.managed"]:
        if args.action == "status":
            md = admin_client(cfg).list_topics(timeout=10)
            return {"managed": False, "bootstrap": cfg["kafka.bootstrap_servers"], "brokers": len(md.brokers),
                    "topics": sorted(t for t in md.topics if not t.startswith("__"))}
        common.fail(f"kafka.managed is false in env '{cfg.env}': finlake does not run a broker to '{args.action}'")
    broker = LocalKafka(cfg)
    if args.action == "up":
        return {"kafka": broker.start()}
    if args.action == "down":
        return {"kafka_stopped": broker.stop()}
    if args.action == "fetch":
        from lakehouse.jvm import ensure_jars

        return {"kafka_jars": len(broker.jars()), "spark_jars": ensure_jars(cfg)}
    return {"kafka": broker.status(), "home": str(cfg.home), "env": cfg.env}


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("action", choices=["up", "down", "status", "fetch", "jar", "rapids"])
    p.add_argument("--out", default="dist", help="jar: the folder finlake-jvm.jar is written to (default: dist)")
    result = common.execute(p, argv, run, app_name="finlake-stack", needs_spark=False)
    print(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
