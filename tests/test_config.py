import os
import stat
from pathlib import Path

import pytest

from lakehouse.config import ConfigError, load_config

CONF = Path(__file__).resolve().parent.parent / "conf"


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


@pytest.fixture
def small_conf(tmp_path):
    write(tmp_path / "base", "a.yaml", "spark:\n  master: local[2]\n  conf: {x: '1'}\nkafka:\n  bootstrap_servers: ${env:T_BOOT,127.0.0.1:1}\n  topics: {t: {partitions: 1}}\npaths:\n  warehouse: ${home}/wh\n")
    write(tmp_path / "dev", "a.yaml", "spark:\n  master: local[1]\n  conf: {y: '2'}\nkafka:\n  topics: {u: {partitions: 3}}\n")
    return tmp_path


def test_env_layer_overrides_base_and_open_mappings_merge(small_conf, tmp_path, monkeypatch):
    monkeypatch.delenv("T_BOOT", raising=False)
    cfg = load_config("dev", conf_dir=small_conf, home=tmp_path / "h")
    assert cfg.data == {
        "spark": {"master": "local[1]", "conf": {"x": "1", "y": "2"}},
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": {"t": {"partitions": 1}, "u": {"partitions": 3}}},
        "paths": {"warehouse": f"{(tmp_path / 'h').resolve()}/wh"},
    }


def test_environment_variables_and_conf_overrides(small_conf, tmp_path, monkeypatch):
    monkeypatch.setenv("T_BOOT", "broker:9999")
    cfg = load_config("dev", ["spark.master=spark://m:7077", "spark.conf.spark.x.y=3"], conf_dir=small_conf, home=tmp_path)
    assert cfg["kafka.bootstrap_servers"] == "broker:9999"
    assert cfg["spark.master"] == "spark://m:7077"
    assert cfg["spark.conf"] == {"x": "1", "y": "2", "spark.x.y": 3}


def test_env_selected_by_finlake_env(small_conf, tmp_path, monkeypatch):
    monkeypatch.setenv("FINLAKE_ENV", "dev")
    assert load_config(conf_dir=small_conf, home=tmp_path).env == "dev"


def test_missing_key_names_the_key(small_conf, tmp_path):
    cfg = load_config("dev", conf_dir=small_conf, home=tmp_path)
    with pytest.raises(ConfigError) as err:
        cfg["spark.mastr"]
    assert str(err.value) == "missing config key 'spark.mastr' (env dev); did you mean 'spark.master'?"


def test_mistyped_key_in_env_file_fails_naming_key_and_file(small_conf, tmp_path):
    write(small_conf / "bad", "a.yaml", "kafka:\n  bootstrap_server: x:1\n")
    with pytest.raises(ConfigError) as err:
        load_config("bad", conf_dir=small_conf, home=tmp_path)
    msg = str(err.value)
    assert msg == (f"unknown config key 'kafka.bootstrap_server' in {small_conf / 'bad' / 'a.yaml'} "
                   "(did you mean 'kafka.bootstrap_servers'?)")
    assert "\n" not in msg


def test_wrong_shape_and_unknown_env_and_bad_override(small_conf, tmp_path):
    write(small_conf / "shape", "a.yaml", "spark: local\n")
    with pytest.raises(ConfigError, match="config key 'spark' .* wrong shape"):
        load_config("shape", conf_dir=small_conf, home=tmp_path)
    with pytest.raises(ConfigError, match="unknown environment 'prod'"):
        load_config("prod", conf_dir=small_conf, home=tmp_path)
    with pytest.raises(ConfigError, match=r"unknown config key 'spark.mastr' given by --conf \(did you mean 'spark.master'\?\)"):
        load_config("dev", ["spark.mastr=x"], conf_dir=small_conf, home=tmp_path)
    with pytest.raises(ConfigError, match="--conf expects key=value"):
        load_config("dev", ["spark.master"], conf_dir=small_conf, home=tmp_path)


def test_required_env_var_without_default(tmp_path, monkeypatch):
    write(tmp_path / "base", "a.yaml", "secret: ${env:T_SECRET}\n")
    write(tmp_path / "e", "a.yaml", "{}\n")
    monkeypatch.delenv("T_SECRET", raising=False)
    with pytest.raises(ConfigError, match="config key 'secret' needs environment variable T_SECRET, which is not set"):
        load_config("e", conf_dir=tmp_path, home=tmp_path)


def test_project_environments_load_and_differ_where_intended(tmp_path, monkeypatch):
    monkeypatch.delenv("FINLAKE_SPARK_MASTER", raising=False)
    local = load_config("local", home=tmp_path)
    gpu = load_config("gpu", home=tmp_path)
    cluster = load_config("cluster", home=tmp_path)
    assert (local["ml.xgboost.device"], gpu["ml.xgboost.device"], cluster["ml.xgboost.device"]) == ("cpu", "cuda", "cpu")
    assert (local["kafka.managed"], cluster["kafka.managed"]) == (True, False)
    assert local["paths.warehouse"] == f"{tmp_path.resolve()}/warehouse"
    monkeypatch.setenv("FINLAKE_WAREHOUSE", "s3a://bucket/wh")
    assert load_config("cluster", home=tmp_path)["paths.warehouse"] == "s3a://bucket/wh"


def test_no_secret_values_in_committed_conf():
    # Secrets may only appear as ${env:...} references.
    for path in CONF.rglob("*.yaml"):
        for line in path.read_text().splitlines():
            if any(word in line.lower() for word in ("password:", "pan_hmac_key:", "secret:")):
                assert "${env:" in line, f"{path}: {line}"


def test_pan_key_required_on_cluster_and_generated_privately_on_laptop(tmp_path, monkeypatch):
    from lakehouse.security import pan_hmac_key

    monkeypatch.delenv("FINLAKE_PAN_HMAC_KEY", raising=False)
    with pytest.raises(ConfigError, match="FINLAKE_PAN_HMAC_KEY is not set; environment 'cluster' requires"):
        pan_hmac_key(load_config("cluster", home=tmp_path))
    local = load_config("local", home=tmp_path)
    key = pan_hmac_key(local)
    assert len(key) == 64 and pan_hmac_key(local) == key
    assert stat.S_IMODE(os.stat(tmp_path / "secrets" / "pan_hmac_key").st_mode) == 0o600
    monkeypatch.setenv("FINLAKE_PAN_HMAC_KEY", "from-env")
    assert pan_hmac_key(load_config("cluster", home=tmp_path)) == b"from-env"


@pytest.mark.parametrize("override, message", [
    ("quality.min_amount=-1", "quality.min_amount must be a number from 0 to 1,000,000, got -1"),
    ("quality.min_amount=free", "quality.min_amount must be a number from 0 to 1,000,000, got 'free'"),
    ("pipeline.max_quarantine_share=1.5", "pipeline.max_quarantine_share must be a share from 0 to 1, got 1.5"),
])
def test_quality_bounds_fail_in_one_line(tmp_path, override, message):
    from lakehouse.quality import min_amount
    from lakehouse.quarantine import max_share

    cfg = load_config("local", [override], home=tmp_path)
    with pytest.raises(ConfigError) as err:
        (min_amount if override.startswith("quality") else max_share)(cfg)
    assert str(err.value) == message
    assert min_amount(load_config("local", [], home=tmp_path)) == 0.0
