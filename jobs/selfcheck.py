"""A small job that proves a deployment works: our packages import on the executors (shipped
with --py-files), Python workers run, and a Delta table is written, read and time-travelled.

    ./spark-submit.sh --master spark://host:7077 jobs/selfcheck.py --out /shared/path
"""
from __future__ import annotations

import sys

from jobs import common


def origin_of_lakehouse(_):
    import lakehouse  # runs on an executor: importing our package there is what this checks

    return lakehouse.__file__


def run(spark, cfg, args) -> dict:
    # pyspark: +0.7 s at import; --help stays quick
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    from lakehouse.security import hmac_sha256_col

    out = args.out or f"{cfg['paths.warehouse']}/selfcheck"
    df = spark.range(0, args.rows, numPartitions=4)
    origin = F.udf(origin_of_lakehouse, StringType())
    df = df.withColumn("tag", hmac_sha256_col(b"selfcheck", F.col("id").cast("string"))).withColumn("origin", origin("id"))
    df.write.format("delta").mode("overwrite").save(out)
    spark.range(args.rows, args.rows + 10).withColumn("tag", F.lit(None).cast("string")).withColumn(
        "origin", F.lit(None).cast("string")).write.format("delta").mode("append").save(out)
    latest = spark.read.format("delta").load(out)
    v0 = spark.read.format("delta").option("versionAsOf", 0).load(out)
    origins = sorted({r[0] for r in v0.select("origin").distinct().collect()})
    return {
        "master": spark.sparkContext.master,
        "rows_v0": v0.count(),
        "rows_latest": latest.count(),
        "sum_id_v0": v0.agg(F.sum("id")).first()[0],
        "executor_lakehouse_origins": origins,
        "tag_of_1": v0.where("id = 1").first()["tag"],
    }


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("--out", default=None, help="Delta path to write (default: <warehouse>/selfcheck)")
    p.add_argument("--rows", type=int, default=1000)
    result = common.execute(p, argv, run, app_name="finlake-selfcheck", register_catalog=False)
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
