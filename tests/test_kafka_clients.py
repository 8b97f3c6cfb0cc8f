import pytest

from lakehouse.config import ConfigError, load_config
from lakehouse.kafka.clients import client_config, spark_kafka_options


def test_plaintext_by_default(tmp_path, monkeypatch):
    for var in ("FINLAKE_KAFKA_SECURITY_PROTOCOL", "FINLAKE_KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(var, raising=False)
    cfg = load_config("local", home=tmp_path)
    assert client_config(cfg) == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}
    assert spark_kafka_options(cfg) == {"kafka.bootstrap.servers": "127.0.0.1:9092", "kafka.security.protocol": "PLAINTEXT"}


def test_sasl_ssl_settings_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FINLAKE_KAFKA_BOOTSTRAP", "b1:9093,b2:9093")
    monkeypatch.setenv("FINLAKE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FINLAKE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("FINLAKE_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("FINLAKE_KAFKA_SASL_PASSWORD", 'p"w')
    monkeypatch.setenv("FINLAKE_KAFKA_SSL_CA_LOCATION", "/etc/ca.pem")
    cfg = load_config("cluster", home=tmp_path)
    assert client_config(cfg) == {
        "bootstrap.servers": "b1:9093,b2:9093", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc", "sasl.password": 'p"w', "ssl.ca.location": "/etc/ca.pem"}
    assert spark_kafka_options(cfg) == {
        "kafka.bootstrap.servers": "b1:9093,b2:9093", "kafka.security.protocol": "SASL_SSL",
        "kafka.sasl.mechanism": "SCRAM-SHA-512",
        "kafka.sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="svc" password="p\\"w";',
        "kafka.ssl.truststore.type": "PEM", "kafka.ssl.truststore.location": "/etc/ca.pem"}


def test_sasl_without_credentials_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FINLAKE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("FINLAKE_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.delenv("FINLAKE_KAFKA_SASL_USERNAME", raising=False)
    monkeypatch.delenv("FINLAKE_KAFKA_SASL_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="SASL_PLAINTEXT needs FINLAKE_KAFKA_SASL_USERNAME and FINLAKE_KAFKA_SASL_PASSWORD"):
        client_config(load_config("local", home=tmp_path))
    monkeypatch.setenv("FINLAKE_KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(ConfigError, match="kafka.security_protocol must be one of"):
        client_config(load_config("local", home=tmp_path))


def test_cluster_ids_never_look_like_options():
    import base64

    from lakehouse.kafka.broker import new_cluster_id

    ids = [new_cluster_id() for _ in range(3000)]  # about 47 raw draws in 3000 start with '-'
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
