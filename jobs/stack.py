"""Manage the local services: the Kafka broker (and its jars); build finlake's own jar.

    python -m jobs.stack up | down | status | fetch
    python -m jobs.stack jar --out dist    # finlake-jvm.jar, to attach as a cluster library (databricks.yml)
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from jobs import common
from lakehouse.jvm import ensure_udf_jar
from lakehouse.kafka.broker import LocalKafka
from lakehouse.kafka.clients import admin_client


JAR_NAME = "finlake-jvm.jar"


def run(_spark, cfg, args) -> dict:
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
    p.add_argument("action", choices=["up", "down", "status", "fetch", "jar"])
    p.add_argument("--out", default="dist", help="jar: the folder finlake-jvm.jar is written to (default: dist)")
    result = common.execute(p, argv, run, app_name="finlake-stack", needs_spark=False)
    print(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
