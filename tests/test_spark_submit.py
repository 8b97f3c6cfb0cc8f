"""spark-submit.sh on local[*] and on a real Spark standalone cluster (master + worker on
localhost, started with pyspark's bundled spark-class)."""
import hashlib
import hmac
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pyspark
import pytest

ROOT = Path(__file__).resolve().parent.parent
SUBMIT = str(ROOT / "spark-submit.sh")
EXPECTED_TAG_OF_1 = hmac.new(b"selfcheck", b"1", hashlib.sha256).hexdigest()


def result_of(out: subprocess.CompletedProcess) -> dict:
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    lines = [l for l in out.stdout.splitlines() if l.startswith("FINLAKE_RESULT ")]
    assert len(lines) == 1, out.stdout[-3000:]
    return json.loads(lines[0].split(" ", 1)[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on {port}")


def test_submit_on_local(job_env, tmp_path):
    out = subprocess.run([SUBMIT, "--conf", "spark.shuffle_partitions=2", "jobs/selfcheck.py", "--rows", "200",
                          "--out", str(tmp_path / "t")], env=job_env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result_of(out) == {
        "master": "local[2]", "rows_v0": 200, "rows_latest": 210, "sum_id_v0": sum(range(200)),
        "tag_of_1": EXPECTED_TAG_OF_1, "executor_lakehouse_origins": [str(ROOT / "lakehouse" / "__init__.py")],
    }


def test_submit_with_bad_arguments_fails_in_one_line(job_env):
    out = subprocess.run([SUBMIT, "jobs/nope.py"], env=job_env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stderr.strip()) == (2, "spark-submit.sh: error: job file not found: jobs/nope.py")
    out = subprocess.run([SUBMIT, "--env", "prod", "jobs/selfcheck.py"], env=job_env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("spark-submit.sh: error: unknown environment 'prod'")


@pytest.fixture
def standalone_cluster(tmp_path):
    spark_home = Path(pyspark.__file__).parent
    env = dict(os.environ, SPARK_HOME=str(spark_home), SPARK_LOG_DIR=str(tmp_path / "logs"), SPARK_LOCAL_IP="127.0.0.1")
    port, worker_port = free_port(), free_port()
    spark_class = str(spark_home / "bin" / "spark-class")
    logs = tmp_path / "logs"
    logs.mkdir()
    master = subprocess.Popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                               "--webui-port", str(free_port())], env=env, stdout=open(logs / "master.log", "w"), stderr=subprocess.STDOUT)
    worker = None
    try:
        wait_for_port(port)
        worker = subprocess.Popen([spark_class, "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}",
                                   "--host", "127.0.0.1", "--port", str(worker_port), "--cores", "2", "--memory", "2g",
                                   "--webui-port", str(free_port()), "--work-dir", str(tmp_path / "work")],
                                  env=env, stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while "Successfully registered with master" not in (logs / "worker.log").read_text():
            assert time.monotonic() < deadline, (logs / "worker.log").read_text()[-2000:]
            time.sleep(0.5)
        yield f"spark://127.0.0.1:{port}"
    finally:
        for proc in (worker, master):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.mark.cluster
def test_submit_on_standalone_cluster(job_env, standalone_cluster, tmp_path):
    env = dict(job_env, FINLAKE_EXECUTOR_MEMORY="1g", FINLAKE_EXECUTOR_CORES="2")
    out = subprocess.run([SUBMIT, "--env", "cluster", "--master", standalone_cluster, "--conf", "spark.driver_memory=1g",
                          "jobs/selfcheck.py", "--rows", "300", "--out", str(tmp_path / "t")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    # The executors imported our code from the zip that --py-files shipped, not from the checkout.
    assert result_of(out) == {
        "master": standalone_cluster, "rows_v0": 300, "rows_latest": 310, "sum_id_v0": sum(range(300)),
        "tag_of_1": EXPECTED_TAG_OF_1, "executor_lakehouse_origins": ["./finlake.zip/lakehouse/__init__.py"],
    }


def test_the_submitted_zip_holds_every_installed_package(tmp_path):
    """--py-files ships what pyproject.toml installs: every top-level package, the decision
    plans' `serving` included, sources and YAML only."""
    import zipfile

    from jobs.submit import build_zip, packages
    from lakehouse.config import PROJECT_ROOT

    pkgs = packages()
    assert pkgs == ("lakehouse", "ml", "serving", "stats", "reports", "jobs")
    names = zipfile.ZipFile(build_zip(tmp_path / "finlake.zip")).namelist()
    assert {n.split("/")[0] for n in names} == set(pkgs)
    assert "serving/decision.py" in names and "reports/demo.py" in names and "lakehouse/schemas/tables.py" in names
    assert not [n for n in names if not n.endswith((".py", ".yaml"))]
    expected = {str(p.relative_to(PROJECT_ROOT)) for pkg in pkgs for p in (PROJECT_ROOT / pkg).rglob("*")
                if p.is_file() and p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts}
    assert set(names) == expected
