"""Send JSON events to Kafka with confluent-kafka and account for every delivery."""
from __future__ import annotations

import json
from typing import Callable, Iterable

from lakehouse.config import Config
from lakehouse.kafka.clients import client_config, topic_name


def send_json(cfg: Config, topic: str, events: Iterable[dict], key: Callable[[dict], str | None] | None = None,
              flush_timeout: float = 60.0) -> dict:
    """Produce ``events`` to ``topic``; returns counts of delivered and failed messages.

    Idempotent producer (acks=all): a retried send is never written twice.
    """
    from confluent_kafka import Producer

    producer = Producer(client_config(cfg, **{"enable.idempotence": True, "linger.ms": 20, "compression.type": "lz4",
                                              "log_level": 3}))
    topic = topic_name(cfg, topic)
    counts = {"sent": 0, "delivered": 0, "failed": 0, "errors": []}

    def on_delivery(err, _msg):
        if err is None:
            counts["delivered"] += 1
        else:
            counts["failed"] += 1
            if len(counts["errors"]) < 5:
                counts["errors"].append(str(err))

    for event in events:
        k = key(event) if key else None
        while True:
            try:
                producer.produce(topic, value=json.dumps(event, separators=(",", ":")).encode(),
                                 key=k.encode() if k is not None else None, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        counts["sent"] += 1
        producer.poll(0)
    remaining = producer.flush(flush_timeout)
    counts["failed"] += remaining
    return counts
