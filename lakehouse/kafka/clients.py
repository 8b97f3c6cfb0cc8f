"""Kafka client settings from config: the same broker and security for confluent-kafka
(producers, admin) and for Spark's Kafka source and sink. Credentials only ever come from
the environment through config references."""
from __future__ import annotations

import time

from lakehouse.config import Config, ConfigError

# confluent_kafka is imported where used: ~40 ms, and every finlake command imports this module at start (jobs.common).

_JAAS = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def _security(cfg: Config) -> dict[str, str]:
    protocol = str(cfg["kafka.security_protocol"] or "PLAINTEXT").upper()
    if protocol not in _PROTOCOLS:
        raise ConfigError(f"kafka.security_protocol must be one of {', '.join(_PROTOCOLS)}, got '{protocol}'")
    out = {"security.protocol": protocol}
    if protocol.startswith("SASL"):
        mechanism = str(cfg["kafka.sasl_mechanism"] or "").upper()
        if mechanism not in _JAAS:
            raise ConfigError(f"kafka.sasl_mechanism must be one of {', '.join(_JAAS)} for {protocol}, got '{mechanism}'")
        if not cfg["kafka.sasl_username"] or not cfg["kafka.sasl_password"]:
            raise ConfigError(f"{protocol} needs FINLAKE_KAFKA_SASL_USERNAME and FINLAKE_KAFKA_SASL_PASSWORD in the environment")
        out.update({"sasl.mechanism": mechanism, "sasl.username": str(cfg["kafka.sasl_username"]),
                    "sasl.password": str(cfg["kafka.sasl_password"])})
    if protocol.endswith("SSL") and cfg["kafka.ssl_ca_location"]:
        out["ssl.ca.location"] = str(cfg["kafka.ssl_ca_location"])
    return out


def topic_name(cfg: Config, topic: str) -> str:
    """The physical name of a logical topic (``kafka.topic_prefix`` + name)."""
    return f"{cfg['kafka.topic_prefix'] or ''}{topic}"


def client_config(cfg: Config, **extra) -> dict[str, str]:
    """librdkafka (confluent-kafka) settings."""
    conf = {"bootstrap.servers": str(cfg["kafka.bootstrap_servers"])}
    conf.update(_security(cfg))
    conf.update(extra)
    return conf


def spark_kafka_options(cfg: Config) -> dict[str, str]:
    """Options for ``spark.readStream.format("kafka")`` and the Kafka sink (``kafka.`` prefixed)."""
    sec = _security(cfg)
    opts = {"kafka.bootstrap.servers": str(cfg["kafka.bootstrap_servers"]),
            "kafka.security.protocol": sec["security.protocol"]}
    if "sasl.mechanism" in sec:
        user = sec["sasl.username"].replace('"', '\\"')
        password = sec["sasl.password"].replace('"', '\\"')
        opts["kafka.sasl.mechanism"] = sec["sasl.mechanism"]
        opts["kafka.sasl.jaas.config"] = f'{_JAAS[sec["sasl.mechanism"]]} required username="{user}" password="{password}";'
    if "ssl.ca.location" in sec:
        # Java clients read a PEM CA file directly as a PEM truststore.
        opts["kafka.ssl.truststore.type"] = "PEM"
        opts["kafka.ssl.truststore.location"] = sec["ssl.ca.location"]
    return opts


def admin_client(cfg: Config):
    from confluent_kafka.admin import AdminClient

    return AdminClient(client_config(cfg))


def topic_config(cfg: Config, name: str) -> dict[str, str]:
    """Topic-level settings: retention (raw input topics hold clear card numbers, so they keep
    ``kafka.raw_retention_hours`` unless the topic sets ``retention_hours``; -1 keeps forever)."""
    spec = (cfg["kafka.topics"] or {}).get(name) or {}
    hours = float(spec.get("retention_hours", cfg["kafka.raw_retention_hours"]))
    return {"retention.ms": "-1" if hours < 0 else str(int(hours * 3_600_000))}


def end_offsets(cfg: Config, names: list[str], timeout: float = 10.0) -> dict[str, dict[str, int]]:
    """The current end offset of every partition of the (logical) topics, as Spark's
    ``startingOffsets`` JSON wants them: ``{physical topic: {"partition": offset}}``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(client_config(cfg, **{"group.id": "finlake-end-offsets", "enable.auto.commit": False}))
    try:
        md = consumer.list_topics(timeout=timeout).topics
        out = {}
        for n in names:
            t = topic_name(cfg, n)
            out[t] = {str(p): int(consumer.get_watermark_offsets(TopicPartition(t, p), timeout=timeout)[1])
                      for p in sorted(md[t].partitions)}
        return out
    finally:
        consumer.close()


def replay_retention(cfg: Config, names: list[str], oldest_epoch: float, now: float | None = None,
                     timeout: float = 30.0) -> dict[str, int]:
    """Raise the retention of the (logical) topics ``names`` so that messages timestamped from
    ``oldest_epoch`` on survive a replay of history with event-time timestamps.

    The broker deletes a closed segment once its newest timestamp is older than the topic's
    retention, so a replay of 60 days into a 24-hour topic loses most of it within minutes. The
    new retention is the replay's span plus the topic's configured retention: the oldest message
    is then kept as long after the replay as a live one would be. A topic that keeps forever, or
    long enough, is left alone. Returns ``{physical topic: new retention.ms}``."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    admin = admin_client(cfg)
    now = time.time() if now is None else now
    physical = {topic_name(cfg, n): n for n in names}
    described = admin.describe_configs([ConfigResource(ResourceType.TOPIC, t) for t in physical])
    changed = {}
    for resource, future in described.items():
        current = int(future.result(timeout=timeout)["retention.ms"].value)
        configured = int(topic_config(cfg, physical[resource.name])["retention.ms"])
        if current < 0 or configured < 0:
            continue
        needed = int(max(0.0, now - oldest_epoch) * 1000) + configured
        if current >= needed:
            continue
        change = ConfigResource(ResourceType.TOPIC, resource.name, incremental_configs=[
            ConfigEntry("retention.ms", str(needed), incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([change])[change].result(timeout=timeout)
        changed[resource.name] = needed
    return changed


def ensure_topics(cfg: Config, timeout: float = 30.0) -> list[str]:
    """Create the configured topics that do not exist yet; return the names created."""
    from confluent_kafka.admin import NewTopic

    admin = admin_client(cfg)
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = cfg["kafka.topics"] or {}
    new = [NewTopic(topic_name(cfg, name), num_partitions=int((spec or {}).get("partitions", 1)),
                    replication_factor=int((spec or {}).get("replication", 1)), config=topic_config(cfg, name))
           for name, spec in wanted.items() if topic_name(cfg, name) not in existing]
    created = []
    for name, future in (admin.create_topics(new, operation_timeout=timeout) if new else {}).items():
        try:
            future.result()
            created.append(name)
        except Exception as exc:  # a concurrent creator already made it
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    if created:
        _wait_for_leaders(admin, created, timeout)
    return sorted(created)


def _wait_for_leaders(admin, topics: list[str], timeout: float) -> None:
    """Return once every partition of ``topics`` has a leader (new topics take a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=timeout).topics
        if all(t in md and md[t].error is None and md[t].partitions and
               all(p.leader >= 0 and p.error is None for p in md[t].partitions.values()) for t in topics):
            return
        time.sleep(0.2)
    raise TimeoutError(f"topics {', '.join(topics)} have no partition leaders after {timeout} s")
