"""A customer's fraud state through Kryo, the generic serializer against the state's own
field-by-field form (``FraudState.State`` is ``KryoSerializable``), as Spark's state encoder
writes and reads it once per key and batch.

    python -m bench.state_serde [--transactions 30,300] [--round-trips 20000]

Compiles ``bench/jvm/StateRoundTrip.java`` against pyspark's jars and finlake's jar, runs three
alternating passes of each form per size; results: bench/results/state_serde.json (median per
form and size, every pass kept).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--transactions", default="30,300", help="transactions in the customer's state (three cards)")
    p.add_argument("--round-trips", type=int, default=20000)
    a = p.parse_args(argv)

    from lakehouse.config import load_config
    from lakehouse.java import java_executable, javac_executable
    from lakehouse.jvm import _pyspark_jars, ensure_udf_jar

    cfg = load_config(None, [])
    cp = os.pathsep.join([str(ensure_udf_jar(cfg)), str(_pyspark_jars() / "*")])
    results = {"cpus": os.cpu_count(), "round_trips": a.round_trips, "sizes": []}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([javac_executable(), "-d", tmp, "-cp", cp, str(ROOT / "bench" / "jvm" / "StateRoundTrip.java")], check=True)
        for n in [int(x) for x in a.transactions.split(",")]:
            run = subprocess.run([java_executable(), "-cp", os.pathsep.join([tmp, cp]), "StateRoundTrip", str(max(1, n // 3)),
                                  str(a.round_trips)], check=True, capture_output=True, text=True)
            passes = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
            size = {"transactions": passes[0]["transactions"], "passes": passes}
            for mode in ("generic", "field_by_field"):
                size[mode] = {"us_per_round_trip": statistics.median(x["us_per_round_trip"] for x in passes if x["mode"] == mode),
                              "bytes": next(x["bytes"] for x in passes if x["mode"] == mode)}
            size["speedup"] = round(size["generic"]["us_per_round_trip"] / size["field_by_field"]["us_per_round_trip"], 2)
            print(json.dumps({k: v for k, v in size.items() if k != "passes"}), flush=True)
            results["sizes"].append(size)
    out = ROOT / "bench" / "results" / "state_serde.json"
    out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
