"""Schemas as code: Kafka message schemas and Delta table schemas."""
