"""The producer job against the real broker, and its files/bronze backfill path."""
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse.backfill import files_to_bronze
from lakehouse.catalog import Catalog
from lakehouse.generators.noise import NoiseConfig
from lakehouse.generators.producer import ShardPlan, run_shard
from lakehouse.generators.streams import STREAMS, GeneratorConfig
from lakehouse.generators.world import build_world
from lakehouse.kafka.clients import client_config
from lakehouse.security import pan_hmac_key, tokenize_pan_value

ROOT = Path(__file__).resolve().parent.parent


def result_of(out):
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads([l for l in out.stdout.splitlines() if l.startswith("FINLAKE_RESULT ")][0].split(" ", 1)[1])


def end_offsets(cfg, topics):
    from confluent_kafka import KafkaException

    consumer = Consumer(client_config(cfg, **{"group.id": "finlake-test-offsets", "enable.auto.commit": False}))
    md = consumer.list_topics(timeout=10)
    out = {}
    for t in topics:
        for p in md.topics[t].partitions:
            for attempt in range(20):  # a just-started broker may still be moving leadership
                try:
                    out[(t, p)] = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                    break
                except KafkaException:
                    if attempt == 19:
                        raise
                    time.sleep(0.5)
    consumer.close()
    return out


def read_range(cfg, before, after):
    consumer = Consumer(client_config(cfg, **{"group.id": "finlake-test-read", "enable.auto.commit": False}))
    wanted = {tp: (before[tp], after[tp]) for tp in after if after[tp] > before[tp]}
    consumer.assign([TopicPartition(t, p, lo) for (t, p), (lo, _) in wanted.items()])
    got, remaining = [], sum(hi - lo for lo, hi in wanted.values())
    while remaining > 0:
        msg = consumer.poll(10)
        assert msg is not None, f"{remaining} messages never arrived"
        if msg.error():
            continue
        if msg.offset() < wanted[(msg.topic(), msg.partition())][1]:
            got.append((msg.topic(), msg.value()))
            remaining -= 1
    consumer.close()
    return got


def test_producer_summary_matches_what_a_consumer_reads_back(kafka, cfg, job_env):
    before = end_offsets(cfg, STREAMS)
    out = subprocess.run([sys.executable, "jobs/produce.py", "--count", "6000", "--rate", "max", "--processes", "2",
                          "--noise", "all=0.01", "--label-delay", "0.2", "--seed", "21", "--quiet"],
                         cwd=ROOT, env=job_env, capture_output=True, text=True, timeout=600)
    summary = result_of(out)
    after = end_offsets(cfg, STREAMS)
    assert (summary["sent"], summary["delivered"], summary["failed"], summary["processes"]) == (6000, 6000, 0, 2)
    on_broker = Counter()
    for (topic, _), end in after.items():
        on_broker[topic] += end - before[(topic, _)]
    assert dict(+on_broker) == summary["per_topic"]
    assert set(summary["per_topic"]) == set(STREAMS)

    messages = read_range(cfg, before, after)
    for topic in STREAMS:
        values = [v for t, v in messages if t == topic]
        parsed = []
        for v in values:
            try:
                parsed.append(json.loads(v))
            except json.JSONDecodeError:
                pass
        noise = summary["per_noise"][topic]
        assert len(values) - len(parsed) == noise.get("malformed", 0), topic
        assert sum("x_schema_v2" in p for p in parsed) == noise.get("unknown_field", 0), topic
        ids = Counter(p.get("event_id") for p in parsed if p.get("event_id"))
        assert sum(1 for c in ids.values() if c > 1) == noise.get("duplicate", 0), topic
    assert summary["truth"]["truth.fraud"] >= summary["per_topic"]["transactions"] - summary["per_noise"]["transactions"].get("duplicate_copy", 0)


def test_paced_producer_does_not_outrun_its_rate(kafka, job_env):
    out = subprocess.run([sys.executable, "jobs/produce.py", "--rate", "400", "--duration", "3", "--streams",
                          "market_ticks", "--quiet", "--no-truth"], cwd=ROOT, env=job_env, capture_output=True, text=True, timeout=300)
    summary = result_of(out)
    assert summary["failed"] == 0 and summary["sent"] > 0
    assert summary["achieved_rate"] < 400 * 1.2, summary


def test_producer_rejects_bad_arguments_in_one_line(job_env):
    for args, message in ((["--count", "10", "--processes", "0"], "finlake: error: --processes must be at least 1, got 0"),
                          (["--count", "10", "--noise", "bogus=1"], "finlake: error: unknown noise kind 'bogus'"),
                          (["--count", "10", "--streams", "trades"], "finlake: error: unknown stream 'trades'"),
                          (["--rate", "100"], "finlake: error: give --count N or --duration SECONDS")):
        out = subprocess.run([sys.executable, "jobs/produce.py", *args], cwd=ROOT, env=job_env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and out.stderr.strip().startswith(message), (args, out.stderr[-500:])


def test_files_mode_lands_no_clear_pan_and_backfills_bronze(spark, cfg, tmp_path):
    key = pan_hmac_key(cfg)
    gen = GeneratorConfig(seed=23, streams=("transactions", "user_events"), noise=NoiseConfig.parse("malformed=0.02"))
    plan = ShardPlan(shard=0, shards=1, gen=gen, run_id="backfill", max_messages=1500, duration_s=None, paced=False,
                     mode="files", files_dir=str(tmp_path), pan_key=key)
    summary = run_shard(plan)
    assert summary["sent"] == 1500
    lines = {t: (tmp_path / t / "part-backfill-000.jsonl").read_text().splitlines() for t in summary["per_topic"]}
    assert {t: len(v) for t, v in lines.items()} == summary["per_topic"]
    text = "\n".join(l for v in lines.values() for l in v)
    pans = {card.pan for c in build_world(23).customers for card in c.cards}
    assert len(pans) > 1000 and not [p for p in pans if p in text]
    first = json.loads(json.loads(lines["transactions"][0])["value"])
    assert "card_pan" not in first and len(first["card_token"]) == 64 and len(first["card_last4"]) == 4

    landed = files_to_bronze(spark, cfg, tmp_path)
    assert landed["bronze.transactions"] >= summary["per_topic"]["transactions"]
    spec = Catalog(cfg).spec("bronze.user_events")
    got = spark.read.format("delta").load(spec.location).where("partition = -1").select("key", "payload", "topic")
    expected = spark.createDataFrame([((json.loads(l)["key"] or "").encode() or None, json.loads(l)["value"].encode(), "user_events")
                                      for l in lines["user_events"]], "key binary, payload binary, topic string")
    assertDataFrameEqual(got, expected)


def test_python_and_spark_tokens_agree(spark, cfg):
    """The producer's files mode (Python) and bronze (our JVM function) give the same token."""
    from lakehouse.jvm import set_pan_key

    key = pan_hmac_key(cfg)
    set_pan_key(spark, key)
    pan = "5500000000000004"
    spark_token = spark.range(1).select(F.call_function("finlake_pan_token", F.lit(pan)).alias("t")).first()["t"]
    assert tokenize_pan_value(key, pan) == (spark_token, "0004")


def _watermarks(cfg, topic):
    consumer = Consumer(client_config(cfg, **{"group.id": "finlake-test-watermarks", "enable.auto.commit": False}))
    md = consumer.list_topics(timeout=10)
    out = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in md.topics[topic].partitions}
    consumer.close()
    return out


def test_a_60_day_replay_with_event_timestamps_loses_nothing(kafka, cfg, capsys):
    """History replayed with its own timestamps into topics that keep 24 hours: the broker deletes
    a closed segment whose newest message is older than that. The producer raises the replayed
    topics' retention first. The proof: the same 600 messages spread over 60 days, one batch
    each (so the broker rolls a segment every 7 days of timestamps), written into a replayed
    topic and into a topic left at 24 hours: the broker's cleaner (every 3 s here) empties the
    second of its old weeks and leaves the first, and the producer's own replay, whole."""
    import dataclasses

    from confluent_kafka import Producer

    from jobs import produce
    from lakehouse.kafka.clients import ensure_topics

    def prefixed(prefix):
        data = dict(cfg.data)
        data["kafka"] = {**data["kafka"], "topic_prefix": prefix}
        return dataclasses.replace(cfg, data=data)

    now = time.time()
    start = now - 60 * 86400
    replay, control = prefixed("replay60d_"), prefixed("kept24h_")
    args = produce.build_parser().parse_args([
        "--streams", "transactions,tx_labels", "--count", "600", "--rate", "max", "--sim-rate", f"{1200 / (60 * 86400):.8f}",
        "--start", str(start), "--kafka-time", "event", "--seed", "4", "--quiet"])
    result = produce.run(None, replay, args)
    assert result["delivered"] == 600 and result["per_topic"]["transactions"] > 250
    assert "retention of replay60d_transactions, replay60d_tx_labels raised to" in capsys.readouterr().err

    ensure_topics(control)
    p = Producer(client_config(cfg))
    for i in range(600):
        for topic in ("kept24h_tx_labels", "replay60d_tx_labels"):
            p.produce(topic, value=b"{}", timestamp=int((start + i * 8640) * 1000))
        assert p.flush(10) == 0

    deadline = time.monotonic() + 90
    # (a pass may come while the writes are still going: wait for one after them)
    while time.monotonic() < deadline and _watermarks(control, "kept24h_tx_labels")[0][0] <= 300:
        time.sleep(2)
    low, high = _watermarks(control, "kept24h_tx_labels")[0]
    assert high == 600 and low > 300, "the broker's cleaner never deleted the unprotected replay: the test proves nothing"
    time.sleep(6)   # another pass of the cleaner over the replayed topics
    extra = {"transactions": 0, "tx_labels": 600}
    for topic, sent in result["per_topic"].items():
        marks = _watermarks(replay, f"replay60d_{topic}")
        assert all(lo == 0 for lo, _ in marks.values()) and sum(hi for _, hi in marks.values()) == sent + extra[topic], (topic, marks)
