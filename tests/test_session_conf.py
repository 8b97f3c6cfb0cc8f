"""The Spark configuration each profile produces, checked without the hardware it targets."""
import sys
from importlib.metadata import version

import pyspark
import xgboost

from jobs.submit import submit_command
from lakehouse.config import load_config
from lakehouse.jvm import packages_dir, udf_jar_path
from lakehouse.session import spark_properties, submit_args

DELTA = f"io.delta:delta-spark_4.2_2.13:{version('delta-spark')}"
KAFKA = f"org.apache.spark:spark-sql-kafka-0-10_2.13:{pyspark.__version__}"


def test_pins_agree_with_each_other():
    # The Delta jar must match the pip package and the Spark line it is built for.
    assert pyspark.__version__ == "4.2.0"
    assert xgboost.__version__ == "3.2.0"   # the xgboost-cpu or the xgboost distribution: the same module
    assert DELTA == "io.delta:delta-spark_4.2_2.13:4.4.0"
    assert int(version("pandas").split(".")[0]) < 3


def test_local_profile(tmp_path, monkeypatch):
    monkeypatch.delenv("FINLAKE_PYTHON", raising=False)
    cfg = load_config("local", home=tmp_path)
    props = spark_properties(cfg)
    assert {k: props[k] for k in (
        "spark.master", "spark.jars", "spark.sql.extensions", "spark.sql.catalog.spark_catalog",
        "spark.sql.shuffle.partitions", "spark.pyspark.python", "spark.ui.enabled", "spark.sql.warehouse.dir",
        "spark.python.daemon.module")} == {
        "spark.master": "local[2]",
        # Cached jar files, never per-session package resolution (which slows every Python task).
        "spark.jars": f"{packages_dir(cfg)}/*.jar,{udf_jar_path(cfg)}",
        "spark.python.daemon.module": "lakehouse.pydaemon",
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": "4",
        "spark.pyspark.python": sys.executable,
        "spark.ui.enabled": "false",
        "spark.sql.warehouse.dir": f"{tmp_path.resolve()}/warehouse",
    }
    assert "spark.plugins" not in props and "spark.jars.packages" not in props
    # The fork-free local file system, on local masters only (its jar also on the driver's class path).
    assert {k: props[k] for k in ("spark.hadoop.fs.file.impl", "spark.hadoop.fs.AbstractFileSystem.file.impl",
                                  "spark.driver.extraClassPath")} == {
        "spark.hadoop.fs.file.impl": "finlake.FastLocalFileSystem",
        "spark.hadoop.fs.AbstractFileSystem.file.impl": "finlake.FastLocalFileSystem$Fs",
        "spark.driver.extraClassPath": str(udf_jar_path(cfg))}
    remote = " ".join(submit_args(cfg, master="spark://m:7077"))
    assert "fs.file.impl" not in remote and "extraClassPath" not in remote and "pydaemon" not in remote
    assert props["spark.driver.extraJavaOptions"] == f"-Dlog4j2.configurationFile=file:{cfg.path('paths.logs')}/spark-log4j2.properties"
    assert "spark.driver.extraJavaOptions" not in spark_properties(load_config("local", ["spark.console_log=true"], home=tmp_path))


def test_gpu_profile_adds_rapids_and_cuda(tmp_path):
    cfg = load_config("gpu", home=tmp_path)
    props = spark_properties(cfg)
    assert cfg["spark.packages"] == [DELTA, KAFKA, "com.nvidia:rapids-4-spark_2.13:26.08.1"]
    assert props["spark.jars"].split(",")[0] == f"{packages_dir(cfg)}/*.jar" and packages_dir(cfg) != packages_dir(load_config("local", home=tmp_path))
    assert {k: props[k] for k in ("spark.plugins", "spark.rapids.sql.enabled", "spark.executor.resource.gpu.amount",
                                  "spark.task.resource.gpu.amount")} == {
        "spark.plugins": "com.nvidia.spark.SQLPlugin", "spark.rapids.sql.enabled": "true",
        "spark.executor.resource.gpu.amount": "1", "spark.task.resource.gpu.amount": "0.5"}
    assert cfg["ml.xgboost.device"] == "cuda" and cfg.is_gpu
    args = submit_args(cfg)
    assert args[:2] == ["--jars", props["spark.jars"]]
    assert "spark.plugins=com.nvidia.spark.SQLPlugin" in args


def test_cluster_profile_takes_master_python_and_warehouse_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FINLAKE_SPARK_MASTER", "spark://head:7077")
    monkeypatch.setenv("FINLAKE_PYTHON", "/opt/venv/bin/python")
    props = spark_properties(load_config("cluster", home=tmp_path))
    assert (props["spark.master"], props["spark.pyspark.python"], props["spark.executor.memory"]) == (
        "spark://head:7077", "/opt/venv/bin/python", "1g")


def test_submit_command_ships_zip_packages_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv("FINLAKE_PYTHON", raising=False)
    cfg = load_config("gpu", home=tmp_path)
    cmd = submit_command(cfg, "jobs/selfcheck.py", ["--rows", "5"], "spark://m:7077", ["spark.shuffle_partitions=2"])
    zipped = tmp_path.resolve() / "dist" / "finlake.zip"
    assert cmd[1:7] == ["--master", "spark://m:7077", "--name", "finlake-selfcheck", "--py-files", str(zipped)]
    assert cmd[-7:] == ["jobs/selfcheck.py", "--env", "gpu", "--conf", "spark.shuffle_partitions=2", "--rows", "5"]
    import zipfile

    names = set(zipfile.ZipFile(zipped).namelist())
    assert {"lakehouse/__init__.py", "lakehouse/config.py", "ml/__init__.py", "stats/__init__.py", "jobs/common.py"} <= names
    assert not any("__pycache__" in n for n in names)


def test_local_sessions_write_through_the_fork_free_file_system(spark, tmp_path):
    """Both Hadoop APIs resolve file: to finlake's file system, and what Delta and a streaming
    checkpoint write through it has the usual modes and reads back."""
    import os
    import stat

    jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()
    path = jvm.org.apache.hadoop.fs.Path(f"file://{tmp_path}/probe")
    assert path.getFileSystem(conf).getClass().getName() == "finlake.FastLocalFileSystem"
    assert jvm.org.apache.hadoop.fs.FileContext.getFileContext(path.toUri(), conf).getDefaultFileSystem().getClass().getName() \
        == "finlake.FastLocalFileSystem$Fs"
    spark.range(3).write.format("delta").save(str(tmp_path / "t"))
    spark.range(3, 5).write.format("delta").mode("append").save(str(tmp_path / "t"))
    assert sorted(r.id for r in spark.read.format("delta").load(str(tmp_path / "t")).collect()) == [0, 1, 2, 3, 4]
    log = tmp_path / "t" / "_delta_log"
    assert stat.S_IMODE(os.stat(log / "00000000000000000001.json").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(log).st_mode) & 0o700 == 0o700
    q = (spark.readStream.format("delta").load(str(tmp_path / "t")).writeStream.format("delta")
         .option("checkpointLocation", str(tmp_path / "ck")).trigger(availableNow=True).start(str(tmp_path / "s")))
    q.awaitTermination(120)
    assert q.exception() is None and (tmp_path / "ck" / "commits" / "0").exists()
    assert spark.read.format("delta").load(str(tmp_path / "s")).count() == 5


def test_scheduler_pools_are_written_from_config_and_bad_ones_refused(tmp_path):
    """spark.scheduler_pools -> the fair scheduler's allocation file that spark_properties names;
    a bad setting is one clear error; an empty map keeps Spark's FIFO scheduler."""
    import xml.etree.ElementTree as ET

    import pytest

    from lakehouse.session import write_pools

    cfg = load_config("local", ["spark.scheduler_pools.lakehouse={weight: 1}", "spark.scheduler_pools.default={mode: fair}"],
                      home=tmp_path)
    props = spark_properties(cfg)
    path = write_pools(cfg)
    assert props["spark.scheduler.mode"] == "FAIR" and props["spark.scheduler.allocation.file"] == f"file:{path}"
    pools = {p.get("name"): (p.findtext("schedulingMode"), p.findtext("weight"), p.findtext("minShare"))
             for p in ET.parse(path).getroot()}
    assert pools == {cfg["decisions.scheduler_pool"]: ("FIFO", "10", "2"), "lakehouse": ("FIFO", "1", "0"),
                     "default": ("FAIR", "1", "0")}
    for bad, says in ((["spark.scheduler_pools.decisions={weight: 0}"], "weight must be >= 1"),
                      (["spark.scheduler_pools.decisions={share: 2}"], "unknown setting(s) ['share']"),
                      (["spark.scheduler_pools.decisions={min_share: two}"], "must be whole numbers"),
                      (["spark.scheduler_pools.default={mode: fastest}"], "mode must be FIFO or FAIR, got 'fastest'")):
        with pytest.raises(ValueError) as err:
            write_pools(load_config("local", bad, home=tmp_path))
        assert says in str(err.value) and "\n" not in str(err.value)
    off = load_config("local", ["spark.scheduler_pools={}"], home=tmp_path)
    assert "spark.scheduler.mode" not in spark_properties(off) and write_pools(off) is None


def _serve_with_ranges(root):
    """A local HTTP server that answers HEAD and byte-range GETs, as Maven Central does."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def _body(self):
            return (root / self.path.lstrip("/")).read_bytes()

        def do_HEAD(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(self._body())))
            self.end_headers()

        def do_GET(self):
            body = self._body()
            start, end = (int(x) for x in self.headers["Range"].removeprefix("bytes=").split("-"))
            part = body[start:end + 1]
            self.send_response(206)
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            self.wfile.write(part)
            self.requests_served.append((start, end))

        def log_message(self, *args):
            pass

    Handler.requests_served = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, Handler.requests_served


def test_the_rapids_check_reads_a_remote_jars_shims_and_refuses_a_spark_it_lacks(tmp_path, capsys):
    import os
    import zipfile

    import pytest

    from jobs.stack import rapids_support
    from lakehouse.jars import artifact_url, remote_jar_entries, shim_name

    # A jar shaped like the RAPIDS Accelerator's: shim folders beside shared classes, with a large
    # incompressible body so that reading its entries must not fetch it whole.
    jar = tmp_path / "com/nvidia/rapids-4-spark_2.13/26.08.1/rapids-4-spark_2.13-26.08.1.jar"
    jar.parent.mkdir(parents=True)
    with zipfile.ZipFile(jar, "w") as z:
        for name in ("spark411/com/A.class", "spark420/com/A.class", "spark400db173/com/A.class", "com/nvidia/Plugin.class"):
            z.writestr(name, b"x")
        z.writestr("spark-shared/blob.bin", os.urandom(4 << 20))
    server, served = _serve_with_ranges(tmp_path)
    try:
        repo = f"http://127.0.0.1:{server.server_port}"
        url = artifact_url("com.nvidia:rapids-4-spark_2.13:26.08.1", repo)
        entries = remote_jar_entries(url)
        assert sum(end - start + 1 for start, end in served) < 2 << 20   # the directory, not the 4 MB body
    finally:
        server.shutdown()
    assert set(entries) == {"spark411/com/A.class", "spark420/com/A.class", "spark400db173/com/A.class",
                            "com/nvidia/Plugin.class", "spark-shared/blob.bin"}
    assert shim_name("4.2.0") == "spark420"

    cfg = load_config("gpu", home=tmp_path)
    assert rapids_support(cfg, "4.2.0", lambda _url: entries) == {
        "rapids": "com.nvidia:rapids-4-spark_2.13:26.08.1", "spark": "4.2.0", "shim": "spark420",
        "shims": ["spark400db173", "spark411", "spark420"]}
    with pytest.raises(SystemExit) as missing:
        rapids_support(cfg, "4.3.0", lambda _url: entries)
    assert missing.value.code == 1
    assert "has no shim for Spark 4.3.0 (spark430)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        rapids_support(load_config("local", home=tmp_path), "4.2.0", lambda _url: entries)


def test_finlakes_jar_is_compiled_again_for_another_spark(tmp_path, monkeypatch):
    cfg = load_config("local", home=tmp_path)
    here = udf_jar_path(cfg)
    assert udf_jar_path(cfg) == here   # the same sources and Spark: the cached jar
    monkeypatch.setattr(pyspark, "__version__", "4.9.0")
    assert udf_jar_path(cfg) != here and udf_jar_path(cfg).parent == here.parent
