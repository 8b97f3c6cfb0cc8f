"""Kafka: the managed local broker and client settings for confluent-kafka and Spark."""
from lakehouse.kafka.broker import BrokerError, LocalKafka
from lakehouse.kafka.clients import admin_client, client_config, ensure_topics, spark_kafka_options

__all__ = ["BrokerError", "LocalKafka", "admin_client", "client_config", "ensure_topics", "spark_kafka_options"]
