"""The real broker, started by the project's code, and a Kafka -> Delta round trip through Spark."""
import itertools
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse.config import load_config
from lakehouse.generators.streams import GeneratorConfig, generate
from lakehouse.generators.world import luhn_valid
from lakehouse.java import INSTALL_JDK
from lakehouse.kafka.broker import BrokerError, LocalKafka
from lakehouse.kafka.clients import admin_client
from lakehouse.kafka.produce import send_json
from lakehouse.streaming import start_bronze

ROOT = Path(__file__).resolve().parent.parent


def test_start_is_idempotent_and_topics_follow_config(kafka, cfg):
    pid = kafka.pid()
    again = kafka.start()
    assert again["pid"] == pid and again["topics_created"] == []
    topics = {t: len(m.partitions) for t, m in admin_client(cfg).list_topics(timeout=10).topics.items()}
    configured = {name: spec["partitions"] for name, spec in cfg["kafka.topics"].items()}
    assert {t: topics.get(t) for t in configured} == configured


def test_port_taken_by_another_process_is_a_clear_error(tmp_path, overrides):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        cfg = load_config("local", overrides + [f"kafka.bootstrap_servers=127.0.0.1:{port}"], home=tmp_path)
        with pytest.raises(BrokerError, match=rf"^port {port} on 127.0.0.1 is already in use by pid {os.getpid()} \(\S+\)"):
            LocalKafka(cfg).start()


def test_missing_java_is_a_clear_error(tmp_path, job_env):
    env = dict(job_env, JAVA_HOME=str(tmp_path / "nojava"), FINLAKE_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "jobs.stack", "up"], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"finlake: error: Java 17+ is required (Spark and the Kafka broker run on it): "
                                  f"JAVA_HOME={tmp_path / 'nojava'} has no bin/java; {INSTALL_JDK}")


def test_produce_n_events_and_a_streaming_query_lands_exactly_n_rows(spark, cfg, kafka):
    stream = generate(GeneratorConfig(seed=11, streams=("transactions",)))
    events = list(itertools.islice((e.event for e in stream if e.topic == "transactions"), 300))
    sent = send_json(cfg, "transactions", events, key=lambda e: e["customer_id"])
    assert sent == {"sent": 300, "delivered": 300, "failed": 0, "errors": []}

    query = start_bronze(spark, cfg, "bronze.transactions", available_now=True)
    query.awaitTermination(300)
    assert query.exception() is None
    text = F.col("payload").cast("string")
    bronze = spark.table("bronze.transactions").where(F.get_json_object(text, "$.event_id").startswith("tx-11-0-"))
    got = bronze.select(F.get_json_object(text, "$.event_id").alias("event_id"),
                        F.get_json_object(text, "$.card_last4").alias("last4"),
                        F.get_json_object(text, "$.amount").alias("amount"), "topic")
    expected = spark.createDataFrame([(e["event_id"], e["card_pan"][-4:], e["amount"], "transactions") for e in events],
                                     "event_id string, last4 string, amount string, topic string")
    assertDataFrameEqual(got, expected)

    # A restarted query resumes from its checkpoint: nothing read twice.
    again = start_bronze(spark, cfg, "bronze.transactions", available_now=True)
    again.awaitTermination(300)
    assert bronze.count() == 300

    # No clear PAN anywhere the pipeline wrote: table files, Delta log, checkpoint.
    pans = {e["card_pan"] for e in events}
    assert all(luhn_valid(p) for p in pans)
    spec_dirs = [Path(cfg["paths.warehouse"]) / "bronze" / "transactions", Path(cfg["paths.checkpoints"]) / "bronze" / "transactions"]
    scanned = 0
    for folder in spec_dirs:
        for f in folder.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                scanned += 1
                assert not any(p.encode() in data for p in pans), f"clear PAN in {f}"
    assert scanned > 5
    # Parquet pages may be compressed, so also read the stored values back.
    stored = [bytes(r.key or b"").decode() + bytes(r.payload or b"").decode()
              for r in spark.table("bronze.transactions").select("key", "payload").collect()]
    assert len(stored) >= 300
    assert [s for s in stored if "card_pan" in s or any(p in s for p in pans)] == []


def test_a_new_bronze_checkpoint_started_at_the_topic_ends_reads_only_what_comes_after(spark, cfg, kafka, tmp_path):
    """What the demo does on a reused broker: take the topic's end offsets, send, and start a new
    bronze checkpoint from those offsets; it lands this run's messages and none of the older ones."""
    import json

    from lakehouse.kafka.clients import end_offsets, topic_name
    from tests.test_scoring import moved

    mcfg = moved(cfg, tmp_path, ["bronze.user_events"])
    stream = generate(GeneratorConfig(seed=17, streams=("user_events",)))
    events = list(itertools.islice((e.event for e in stream if e.topic == "user_events"), 65))
    older, newer = events[:40], events[40:]
    assert send_json(mcfg, "user_events", older, key=lambda e: e["customer_id"])["delivered"] == 40
    ends = end_offsets(mcfg, ["user_events"])
    assert sum(ends[topic_name(mcfg, "user_events")].values()) >= 40
    assert send_json(mcfg, "user_events", newer, key=lambda e: e["customer_id"])["delivered"] == 25
    query = start_bronze(spark, mcfg, "bronze.user_events", available_now=True, starting_offsets=json.dumps(ends))
    query.awaitTermination(300)
    assert query.exception() is None
    landed = spark.read.format("delta").load(str(tmp_path / "tables" / "bronze.user_events"))
    got = landed.select(F.get_json_object(F.col("payload").cast("string"), "$.event_id").alias("event_id"))
    assertDataFrameEqual(got, spark.createDataFrame([(e["event_id"],) for e in newer], "event_id string"))
