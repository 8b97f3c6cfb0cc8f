"""Send JSON events to Kafka with confluent-kafka and account for every delivery."""
from __future__ import annotations

import json
from typing import Callable, Iterable

from confluent_kafka import Producer

from lakehouse.config import Config
from lakehouse.kafka.clients import client_config, topic_name


class DeliveryCounter:
    """A delivery callback that counts acknowledged and failed messages (first errors kept)."""

    def __init__(self):
        self.delivered = 0
        self.failed = 0
        self.errors: list[str] = []

    def __call__(self, err, _msg) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            if len(self.errors) < 5:
                self.errors.append(str(err))


def send_json(cfg: Config, topic: str, events: Iterable[dict], key: Callable[[dict], str | None] | None = None,
              flush_timeout: float = 60.0) -> dict:
    """Produce ``events`` to ``topic``; returns counts of delivered and failed messages.

    Idempotent producer (acks=all): a retried send is never written twice.
    """
    producer = Producer(client_config(cfg, **{"enable.idempotence": True, "linger.ms": 20, "compression.type": "lz4",
                                              "log_level": 3}))
    topic = topic_name(cfg, topic)
    on_delivery = DeliveryCounter()
    sent = 0

    for event in events:
        k = key(event) if key else None
        while True:
            try:
                producer.produce(topic, value=json.dumps(event, separators=(",", ":")).encode(),
                                 key=k.encode() if k is not None else None, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        sent += 1
        producer.poll(0)
    remaining = producer.flush(flush_timeout)
    return {"sent": sent, "delivered": on_delivery.delivered, "failed": on_delivery.failed + remaining,
            "errors": on_delivery.errors}


def send_raw(cfg: Config, messages: Iterable[tuple[str, bytes | None, bytes | None]], flush_timeout: float = 120.0) -> dict:
    """Produce ``(logical topic, key, value)`` byte messages as they are (no encoding, no
    checks: hostile input included); returns sent, delivered and failed counts per topic."""
    producer = Producer(client_config(cfg, **{"enable.idempotence": True, "linger.ms": 20, "compression.type": "lz4",
                                              "message.max.bytes": 2_000_000, "log_level": 3}))
    counters: dict[str, DeliveryCounter] = {}
    sent: dict[str, int] = {}
    for topic, key, value in messages:
        counter = counters.setdefault(topic, DeliveryCounter())
        while True:
            try:
                producer.produce(topic_name(cfg, topic), value=value, key=key, on_delivery=counter)
                break
            except BufferError:
                producer.poll(0.1)
        sent[topic] = sent.get(topic, 0) + 1
        producer.poll(0)
    remaining = producer.flush(flush_timeout)
    return {t: {"sent": sent[t], "delivered": c.delivered, "failed": c.failed, "errors": c.errors} for t, c in counters.items()} | (
        {"_unflushed": remaining} if remaining else {})
