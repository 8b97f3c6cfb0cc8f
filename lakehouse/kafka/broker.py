"""A real single-node Apache Kafka broker (KRaft combined mode, no ZooKeeper), run from the
``org.apache.kafka`` jars on Maven Central and kept under FINLAKE_HOME.

``start`` is idempotent and returns once the broker answers metadata requests; it fails with
one clear line when Java is missing, the port belongs to another process, or the broker dies.
"""
from __future__ import annotations

import base64
import subprocess
import time
import uuid
from pathlib import Path

from lakehouse.config import Config, ConfigError
from lakehouse.jars import resolve
from lakehouse.java import java_executable
from lakehouse.kafka.clients import admin_client, ensure_topics
from lakehouse.procs import port_open, stop_process, who_holds

# psutil (~40 ms) and confluent_kafka (~55 ms) are imported where used: every finlake command imports this module.

# Kafka 4.1's log calls go through SLF4J 1.7; this binding routes them to log4j2 and a file.
LOG_BINDING = "org.apache.logging.log4j:log4j-slf4j-impl:2.24.3"


class BrokerError(RuntimeError):
    pass


def new_cluster_id() -> str:
    """A Kafka cluster id (base64url of a UUID). One that starts with '-' would be read as an
    option by the storage tool's argument parser (1 in 64 of them), so those are redrawn."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _owner_of_port(port: int) -> str:
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    except Exception:
        pass
    return "another process"


class LocalKafka:
    """The managed broker for ``cfg``: files under ``<home>/kafka``, logs under ``paths.logs``."""

    def __init__(self, cfg: Config):
        if not cfg["kafka.managed"]:
            raise ConfigError("kafka.managed is false: finlake does not run a broker for this environment")
        self.cfg = cfg
        bootstrap = str(cfg["kafka.bootstrap_servers"])
        if "," in bootstrap or ":" not in bootstrap:
            raise ConfigError(f"kafka.bootstrap_servers must be one host:port for the managed broker, got '{bootstrap}'")
        host, port = bootstrap.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.controller_port = int(cfg["kafka.controller_port"])
        self.version = str(cfg["kafka.version"])
        self.root = cfg.home / "kafka"
        self.data_dir = self.root / "data"
        self.props_file = self.root / "server.properties"
        self.pid_file = self.root / "broker.pid"
        self.log_dir = cfg.path("paths.logs") / "kafka"
        self.jar_dir = cfg.path("paths.cache") / f"kafka-{self.version}"

    # -- files ---------------------------------------------------------------------------
    def jars(self) -> list[Path]:
        return resolve([f"org.apache.kafka:kafka_2.13:{self.version}", LOG_BINDING], self.jar_dir,
                       self.cfg.path("paths.cache") / "ivy", log=self.log_dir / "resolve.log")

    def _write_properties(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        h, p, c = self.host, self.port, self.controller_port
        self.props_file.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={h}:{c}",
            f"listeners=PLAINTEXT://{h}:{p},CONTROLLER://{h}:{c}",
            f"advertised.listeners=PLAINTEXT://{h}:{p}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.data_dir}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            f"log.retention.check.interval.ms={int(self.cfg['kafka.retention_check_ms'])}",
            "num.network.threads=2",
            "num.io.threads=4",
            "",
        ]))
        (self.root / "log4j2.properties").write_text("\n".join([
            "rootLogger.level=INFO",
            "rootLogger.appenderRef.file.ref=FILE",
            "appender.file.type=RollingFile",
            "appender.file.name=FILE",
            f"appender.file.fileName={self.log_dir}/server.log",
            f"appender.file.filePattern={self.log_dir}/server.log.%i",
            "appender.file.layout.type=PatternLayout",
            "appender.file.layout.pattern=[%d] %p %m (%c)%n",
            "appender.file.policies.type=Policies",
            "appender.file.policies.size.type=SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size=20MB",
            "appender.file.strategy.type=DefaultRolloverStrategy",
            "appender.file.strategy.max=3",
            "",
        ]))

    def _classpath(self) -> str:
        self.jars()
        return str(self.jar_dir / "*")

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = new_cluster_id()
        out = subprocess.run(
            [java_executable(), "-cp", self._classpath(), f"-Dlog4j2.configurationFile={self.root / 'log4j2.properties'}",
             "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id, "-c", str(self.props_file)],
            capture_output=True, text=True,
        )
        if out.returncode != 0:
            raise BrokerError(f"formatting Kafka storage in {self.data_dir} failed: {(out.stderr or out.stdout).strip()[-400:]}")

    # -- process -------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The broker's pid if our broker process is alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            import psutil

            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or str(self.props_file) not in " ".join(proc.cmdline()):
                return None
        except Exception:
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None and port_open(self.host, self.port)

    def start(self) -> dict:
        """Start the broker unless it already runs; wait until it serves metadata; create topics."""
        java = java_executable()
        if self.pid() is None:
            for port in (self.port, self.controller_port):
                if port_open(self.host, port):
                    raise BrokerError(
                        f"port {port} on {self.host} is already in use by {_owner_of_port(port)}; "
                        f"stop it ({who_holds(port)}) or point FINLAKE_KAFKA_BOOTSTRAP / kafka.controller_port elsewhere")
            self._write_properties()
            self._format_storage()
            out = open(self.log_dir / "broker.out", "ab")
            heap = str(self.cfg["kafka.heap"])
            proc = subprocess.Popen(
                [java, f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                 f"-Dlog4j2.configurationFile={self.root / 'log4j2.properties'}", f"-Dkafka.logs.dir={self.log_dir}",
                 "-cp", self._classpath(), "kafka.Kafka", str(self.props_file)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
            self.pid_file.write_text(str(proc.pid))
            self._wait_ready(proc)
        created = ensure_topics(self.cfg)
        return {"pid": self.pid(), "bootstrap": f"{self.host}:{self.port}", "topics_created": created}

    def _wait_ready(self, proc: subprocess.Popen) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + float(self.cfg["kafka.start_timeout_s"])
        admin = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(f"the Kafka broker exited with code {proc.returncode} while starting; "
                                  f"last log lines: {self._log_tail()}")
            if port_open(self.host, self.port):
                # Created only once the port answers, so librdkafka logs no refused connects.
                admin = admin or AdminClient({"bootstrap.servers": f"{self.host}:{self.port}", "socket.timeout.ms": 2000})
                try:
                    md = admin.list_topics(timeout=2)
                    if md.brokers:
                        return
                except Exception:
                    pass
            time.sleep(0.3)
        self.stop()
        raise BrokerError(f"the Kafka broker did not accept connections within {self.cfg['kafka.start_timeout_s']} s; "
                          f"see {self.log_dir}/server.log")

    def _log_tail(self, n: int = 3) -> str:
        for name in ("broker.out", "server.log"):
            path = self.log_dir / name
            if path.exists():
                lines = [l for l in path.read_text(errors="replace").splitlines() if l.strip()]
                if lines:
                    return " | ".join(lines[-n:])
        return "(no log)"

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``). False if it was not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        stop_process(pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> dict:
        pid = self.pid()
        info = {"managed": True, "running": pid is not None and port_open(self.host, self.port), "pid": pid,
                "bootstrap": f"{self.host}:{self.port}", "data": str(self.data_dir), "logs": str(self.log_dir)}
        if info["running"]:
            md = admin_client(self.cfg).list_topics(timeout=5)
            info["topics"] = {t: len(m.partitions) for t, m in sorted(md.topics.items()) if not t.startswith("__")}
        return info


def ensure_broker(cfg: Config) -> dict:
    """Make sure a broker serves ``kafka.bootstrap_servers`` and the topics exist.

    Jobs call this: a broker already answering there (``make up``, another checkout's, or the
    user's own) is used as it is; otherwise, when the broker is managed, ours is started.
    """
    bootstrap = str(cfg["kafka.bootstrap_servers"])
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if port_open(host or "127.0.0.1", int(port)):
        try:
            if admin_client(cfg).list_topics(timeout=5).brokers:
                return {"bootstrap": bootstrap, "reused": True, "topics_created": ensure_topics(cfg)}
        except Exception:
            pass
    if not cfg["kafka.managed"]:
        raise BrokerError(f"no Kafka broker answers at {bootstrap} (kafka.managed is false, so finlake starts none)")
    return {**LocalKafka(cfg).start(), "reused": False}
