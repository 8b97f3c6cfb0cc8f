"""One producer shard: generate, add noise, pace, and send to Kafka (or write files), counting
what was sent per topic and per noise kind. ``jobs/produce.py`` runs one or several shards."""
from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from lakehouse.generators.base import TRUTH_PREFIX
from lakehouse.generators.noise import NoiseInjector
from lakehouse.generators.streams import GeneratorConfig, generate
from lakehouse.generators.truth import TruthWriter
from lakehouse.kafka.produce import DeliveryCounter


@dataclass
class ShardPlan:
    shard: int
    shards: int
    gen: GeneratorConfig
    run_id: str
    max_messages: int | None         # stop after this many messages (this shard's share)
    duration_s: float | None         # or after this many wall seconds
    paced: bool                      # False: as fast as possible
    mode: str                        # "kafka" or "files"
    kafka_conf: dict | None = None
    files_dir: str | None = None
    truth_locations: dict | None = None
    pan_key: bytes | None = None     # files mode: PANs are tokenized before they touch disk
    topic_prefix: str = ""           # kafka mode: physical topic = prefix + logical name
    event_timestamps: bool = False   # kafka mode: record timestamp = the event's own time (a replay), not now


def run_shard(plan: ShardPlan, progress=None) -> dict:
    """Run one shard to its stop condition; returns its summary (counts, timings, errors)."""
    gen = plan.gen
    stream = generate(gen, plan.shard, plan.shards)
    truth = TruthWriter(plan.truth_locations, plan.run_id, plan.shard) if plan.truth_locations else None
    if plan.mode == "files":
        from lakehouse.security import tokenize_event

        key = plan.pan_key
        stream = (_tokenized(e, key, tokenize_event) for e in stream)

    def clean_only():
        for e in stream:
            if e.topic.startswith(TRUTH_PREFIX):
                if truth is not None:
                    truth.add(e.topic, dict(e.event))
                continue
            yield e

    messages = NoiseInjector(gen.noise, gen.seed, plan.shard).apply(clean_only())
    per_topic: Counter = Counter()
    per_noise: dict[str, Counter] = defaultdict(Counter)
    on_delivery = DeliveryCounter()
    producer = files = None
    if plan.mode == "kafka":
        from confluent_kafka import Producer

        producer = Producer({**plan.kafka_conf, "enable.idempotence": True, "acks": "all", "linger.ms": 20, "log_level": 3,
                             "batch.num.messages": 10000, "compression.type": "lz4",
                             "queue.buffering.max.messages": 500000})
    else:
        files = {}
        root = Path(plan.files_dir)

    sent = 0
    wall0 = time.perf_counter()
    sim0 = None
    deadline = wall0 + plan.duration_s if plan.duration_s else None
    for msg in messages:
        if plan.max_messages is not None and sent >= plan.max_messages:
            break
        now = time.perf_counter()
        if sim0 is None:
            sim0 = msg.at
        if plan.paced:
            due = wall0 + (msg.at - sim0)
            if due > now + 0.002:
                time.sleep(due - now)
                now = time.perf_counter()
        if deadline is not None and now >= deadline:
            break
        if producer is not None:
            while True:
                try:
                    producer.produce(plan.topic_prefix + msg.topic, value=msg.value, key=msg.key.encode() if msg.key else None,
                                     on_delivery=on_delivery, **({"timestamp": int(msg.at * 1000)} if plan.event_timestamps else {}))
                    break
                except BufferError:
                    producer.poll(0.05)
            if sent % 1000 == 0:
                producer.poll(0)
        else:
            fh = files.get(msg.topic)
            if fh is None:
                (root / msg.topic).mkdir(parents=True, exist_ok=True)
                fh = files[msg.topic] = open(root / msg.topic / f"part-{plan.run_id}-{plan.shard:03d}.jsonl", "w")
            fh.write(json.dumps({"key": msg.key, "value": msg.value.decode("utf-8", "replace"),
                                 "timestamp": round(time.time(), 3)}) + "\n")
        sent += 1
        per_topic[msg.topic] += 1
        per_noise[msg.topic][msg.noise or "clean"] += 1
        if progress is not None and sent % 2000 == 0:
            progress[plan.shard] = sent
    send_end = time.perf_counter()
    if producer is not None:
        on_delivery.failed += producer.flush(120)
    else:
        for fh in files.values():
            fh.close()
        on_delivery.delivered = sent
    end = time.perf_counter()
    if progress is not None:
        progress[plan.shard] = sent
    truth_counts = truth.close() if truth else {}
    return {"shard": plan.shard, "sent": sent, "per_topic": dict(per_topic),
            "per_noise": {t: dict(c) for t, c in per_noise.items()}, "delivered": on_delivery.delivered,
            "failed": on_delivery.failed, "errors": on_delivery.errors, "send_seconds": send_end - wall0,
            "seconds": end - wall0, "truth": truth_counts}


def _tokenized(e, key, tokenize_event):
    if e.topic == "transactions":
        e.event = tokenize_event(key, e.event)
    return e
