"""The bronze tokenizer and the silver parse against raw Spark limits, on the same rows.

    python -m bench.parse --rows 1000000      # record: bench/results/parse.json

Rows are transaction payloads built in Spark (card numbers in ``card_pan``). Each figure is a
full pass written to Spark's ``noop`` sink, timed after one warm-up pass:
- build: making the payloads only (the floor every other line includes);
- tokenize: + ``finlake_tokenize_payload`` (the JVM tokenizer bronze runs);
- the same two on payloads whose coordinates are doubles with 16-digit fractions and whose
  extras hold such decimals as text (what an outside export sends; a digit scanner trips on one
  fraction in ten);
- raw parse: + ``from_json`` into ``map<string,string>`` (a parse with no checks);
- variant map: + ``try_parse_json`` into ``map<string,variant>`` (the first step of silver's parse);
- types and texts: + each field's JSON type and text (silver's second step);
- silver parse: + ``parse_bronze`` and the compiled expectation rules (what silver runs), with
  each parser: ``expressions`` (Spark SQL expressions) and ``jvm`` (``finlake.ParsePayload``,
  the default), and the JVM parse without the rules;
- counts: + the silver batch's one count aggregate (every reason and rule, distinct valid ids,
  the reasons list), and the same without the distinct count and the list.
"""
from __future__ import annotations

import argparse
import json
import time


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="Tokenizer and silver parse against raw Spark limits.")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--env", default=None)
    args = p.parse_args(argv)

    from pyspark.sql import functions as F

    from lakehouse.config import load_config
    from lakehouse.jvm import set_pan_key
    from lakehouse.pipeline import SilverBatch
    from lakehouse.schemas.events import SILVER_FIELDS
    from lakehouse.session import build_session
    from lakehouse.silver import add_rule_failures, parse_bronze

    cfg = load_config(args.env, ["security.pan_hmac_key_missing=generate"])
    spark = build_session(cfg, app_name="finlake-bench-parse")
    set_pan_key(spark, b"bench-key")
    pan = F.concat(F.lit("4"), F.lpad((F.col("id") * 7919 % 10**14).cast("string"), 14, "0"), F.lit("0"))
    payload = F.concat(
        F.lit('{"event_id":"tx-'), F.col("id").cast("string"), F.lit('","event_time":"2026-01-01T00:00:00.123Z","card_pan":"'), pan,
        F.lit('","customer_id":"c-'), (F.col("id") % 5000).cast("string"), F.lit('","merchant_id":"m-17","merchant_country":"FR",'
        '"mcc":"5411","amount":"12.50","currency":"EUR","channel":"ecommerce","terminal_id":null,"lat":48.8,"lon":2.3,'
        '"device_id":"d-1"}')).cast("binary")
    rows = spark.range(args.rows).select(payload.alias("payload"))
    frac = lambda k: F.format_string("%.16f", (F.col("id") * k % 1_000_003) / F.lit(8_333.0) - 60)  # noqa: E731
    decimals = spark.range(args.rows).select(F.concat(
        F.lit('{"event_id":"tx-'), F.col("id").cast("string"), F.lit('","card_pan":"'), pan, F.lit('","lat":'), frac(7919),
        F.lit(',"lon":'), frac(104729), F.lit(',"extras":{"bill_lat":"'), frac(1299709), F.lit('","bill_lon":"'), frac(15485863),
        F.lit('"},"amount":"12.50"}')).cast("binary").alias("payload"))
    tokenized = rows.select(F.call_function("finlake_tokenize_payload", "payload").alias("payload"))
    bronze_like = tokenized.select("payload", F.lit(0).alias("partition"), F.lit(0).cast("long").alias("offset"),
                                   F.current_timestamp().alias("kafka_timestamp"), F.lit("transactions").alias("topic"))
    parsed = {parser: bronze_like.transform(parse_bronze("transactions", 3600, 1e9, parser=parser)) for parser in ("expressions", "jvm")}
    silver = parsed["jvm"].transform(add_rule_failures("transactions"))
    members = tokenized.select(F.try_variant_get(F.try_parse_json(F.col("payload").cast("string")), "$", "map<string,variant>").alias("_m"))
    fields = SILVER_FIELDS["transactions"].fields
    counts = SilverBatch(cfg, "transactions", str(cfg.path("paths.checkpoints") / "bench_parse"))._counts
    plans = {
        "build": rows,
        "tokenize": tokenized,
        "build (16-digit fractions)": decimals,
        "tokenize (16-digit fractions)": decimals.select(F.call_function("finlake_tokenize_payload", "payload").alias("payload")),
        "raw parse (from_json to map)": tokenized.select(F.from_json(F.col("payload").cast("string"), "map<string,string>").alias("m")),
        "variant map": members,
        "+ each field's type and text": members.select(
            "*", *[F.schema_of_variant(F.col("_m").getItem(f.name)).alias(f"k_{f.name}") for f in fields],
            *[F.try_variant_get(F.col("_m").getItem(f.name), "$", "string").alias(f"s_{f.name}") for f in fields]),
        "silver parse + rules (expressions)": parsed["expressions"].transform(add_rule_failures("transactions")),
        "silver parse (jvm), no rules": parsed["jvm"],
        "silver parse + rules (jvm)": silver,
        "+ batch counts": silver.agg(*counts),
        "+ batch counts, no distinct/list": silver.agg(*counts[:-2]),
    }
    out = {"rows": args.rows, "cores": spark.sparkContext.defaultParallelism, "rows_per_s": {}}
    for name, df in plans.items():
        df.write.format("noop").mode("overwrite").save()  # warm-up
        t = time.perf_counter()
        df.write.format("noop").mode("overwrite").save()
        out["rows_per_s"][name] = round(args.rows / (time.perf_counter() - t))
    base = out["rows_per_s"]["raw parse (from_json to map)"]
    for parser in ("expressions", "jvm"):
        out[f"silver_parse_vs_raw_parse_{parser}"] = round(out["rows_per_s"][f"silver parse + rules ({parser})"] / base, 3)
    for name, rate in out["rows_per_s"].items():
        print(f"{name:32s} {rate:>12,} rows/s")
    print(f"silver parse + rules at {out['silver_parse_vs_raw_parse_expressions']:.0%} (expressions) and "
          f"{out['silver_parse_vs_raw_parse_jvm']:.0%} (jvm) of the raw parse")
    # the record, with the limits of the same run (build floor, raw parse) beside each figure
    import os
    import platform
    from pathlib import Path

    record = {"command": f"python -m bench.parse --rows {args.rows}", "date": time.strftime("%Y-%m-%d"),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, **out}
    target = Path(__file__).resolve().parent / "results" / "parse.json"
    target.write_text(json.dumps(record, indent=1) + "\n")
    print("FINLAKE_RESULT " + json.dumps(out))
    spark.stop()
    return out


if __name__ == "__main__":
    main()
