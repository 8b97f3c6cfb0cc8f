"""Serve the finlake catalog over JDBC/ODBC: Spark's Thrift server, every table by name.

    python -m jobs.sql_server start | stop | status     (make sql-server / make sql-server-stop)
    python -m jobs.sql_server serve                     (in the foreground; what start runs)

Clients (beeline, DBeaver, Tableau, any Hive JDBC/ODBC driver) connect to
jdbc:hive2://<sql_server.host>:<sql_server.port>/default with no user or password; tables are
named as in conf/base/catalog.yaml (``silver.transactions``, ``gold.fraud_scores``, ...) and
Delta time travel works (``VERSION AS OF``). The server has no authentication configured, so it
listens on loopback only by default.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from jobs import common
from lakehouse.jvm import ensure_jars
from lakehouse.procs import port_open, stop_process, who_holds
from lakehouse.session import build_session

ROOT = Path(__file__).resolve().parents[1]


def jdbc_url(cfg) -> str:
    return f"jdbc:hive2://{cfg['sql_server.host']}:{int(cfg['sql_server.port'])}/default"


def _pid_file(cfg) -> Path:
    return cfg.path("paths.home") / "sql_server" / "server.pid"


def server_pid(cfg) -> int | None:
    """The pid of this home's SQL server, if it runs."""
    try:
        pid = int(_pid_file(cfg).read_text().strip())
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or "jobs.sql_server" not in " ".join(proc.cmdline()):
            return None
        return pid
    except (OSError, ValueError, psutil.Error):
        return None


def serve(spark, cfg, stop: threading.Event | None = None) -> dict:
    """Start the Thrift server on ``spark`` (catalog registered) and block until ``stop`` is
    set or the process gets SIGTERM/SIGINT; tables created meanwhile are registered by name."""
    from lakehouse.catalog import Catalog  # pyspark: +0.7 s at import; start, stop, status start no Spark

    stop = stop or threading.Event()
    host, port = str(cfg["sql_server.host"]), int(cfg["sql_server.port"])
    if port_open(host, port):
        common.fail(f"port {port} on {host} is already in use; stop what holds it ({who_holds(port)}) or set --conf sql_server.port=<free port>")
    # The server reads its settings from the session's Hadoop configuration.
    spark.conf.set("hive.server2.thrift.bind.host", host)
    spark.conf.set("hive.server2.thrift.port", str(port))
    spark.conf.set("hive.server2.transport.mode", "binary")
    jvm = spark.sparkContext._jvm
    server = jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithSparkSession(spark._jsparkSession, False)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    print(f"finlake: SQL server ready at {jdbc_url(cfg)}", flush=True)
    catalog, refresh = Catalog(cfg), float(cfg["sql_server.refresh_s"])
    try:
        while not stop.wait(refresh):
            catalog.register(spark)
    finally:
        server.stop()
    return {"jdbc_url": jdbc_url(cfg), "stopped": True}


def start(cfg, args) -> dict:
    """Run ``serve`` as a background process (log under paths.logs) and wait until it answers."""
    host, port = str(cfg["sql_server.host"]), int(cfg["sql_server.port"])
    pid = server_pid(cfg)
    if pid is not None:
        return {"jdbc_url": jdbc_url(cfg), "pid": pid, "already_running": True}
    if port_open(host, port):
        common.fail(f"port {port} on {host} is already in use; stop what holds it ({who_holds(port)}) or set --conf sql_server.port=<free port>")
    log = cfg.path("paths.logs") / "sql_server.out"
    log.parent.mkdir(parents=True, exist_ok=True)
    _pid_file(cfg).parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "jobs.sql_server", "serve", *(["--env", args.env] if args.env else []),
           *[a for c in args.conf for a in ("--conf", c)]]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "FINLAKE_HOME": str(cfg.home)})
    _pid_file(cfg).write_text(str(proc.pid))
    deadline = time.monotonic() + float(cfg["sql_server.start_timeout_s"])
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = [l for l in log.read_text(errors="replace").splitlines() if l.strip()][-1:]
            common.fail(f"the SQL server exited with code {proc.returncode} while starting: {' '.join(tail) or 'no output'} "
                        f"(log: {log})", code=1)
        if port_open(host, port):
            return {"jdbc_url": jdbc_url(cfg), "pid": proc.pid, "log": str(log)}
        time.sleep(0.5)
    stop(cfg)
    common.fail(f"the SQL server did not accept connections on {host}:{port} within {cfg['sql_server.start_timeout_s']} s "
                f"(log: {log})", code=1)


def stop(cfg, timeout: float = 60.0) -> bool:
    """SIGTERM the server (SIGKILL after ``timeout``); False if none ran."""
    pid = server_pid(cfg)
    if pid is None:
        _pid_file(cfg).unlink(missing_ok=True)
        return False
    stop_process(pid, timeout, group=True)
    _pid_file(cfg).unlink(missing_ok=True)
    return True


def serve_session(cfg):
    """The session ``serve`` runs: the jars also on the driver's class path, because the JDBC
    sessions the server opens resolve Delta's catalog from the application class loader."""
    from lakehouse.catalog import Catalog  # pyspark: +0.7 s at import; start, stop, status start no Spark

    spark = build_session(cfg, app_name="finlake-sql-server", extra={"spark.driver.extraClassPath": os.pathsep.join(ensure_jars(cfg))})
    Catalog(cfg).register(spark)
    return spark


def run(spark, cfg, args) -> dict:
    if args.action == "serve":
        return serve(spark or serve_session(cfg), cfg)
    if args.action == "start":
        return start(cfg, args)
    if args.action == "stop":
        return {"stopped": stop(cfg)}
    pid = server_pid(cfg)
    return {"running": pid is not None and port_open(str(cfg["sql_server.host"]), int(cfg["sql_server.port"])),
            "pid": pid, "jdbc_url": jdbc_url(cfg)}


def main(argv=None):
    p = common.parser(__doc__)
    p.add_argument("action", choices=["start", "stop", "status", "serve"])
    result = common.execute(p, argv, run, app_name="finlake-sql-server", needs_spark=False)
    print(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
