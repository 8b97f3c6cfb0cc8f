"""Process plumbing: is a port answering, stop a process politely then firmly (the Kafka broker,
the SQL server), and sample the CPU and memory of process trees (the benchmarks)."""
from __future__ import annotations

import os
import signal
import socket
import threading
import time

# psutil is imported where used: ~40 ms, and every finlake command imports this module at start (jobs.common).


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


def who_holds(port: int) -> str:
    """The commands that show what listens on ``port``, for a message about a port in use."""
    return f"`ss -ltnp 'sport = :{port}'` (Linux) or `lsof -nP -iTCP:{port} -sTCP:LISTEN` (macOS) shows it"


def stop_process(pid: int, timeout: float, group: bool = False) -> None:
    """SIGTERM ``pid`` (its whole process group with ``group``), SIGKILL after ``timeout``."""
    import psutil

    kill = os.killpg if group else os.kill
    kill(pid, signal.SIGTERM)
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.TimeoutExpired:
        kill(pid, signal.SIGKILL)
        psutil.Process(pid).wait(10)
    except psutil.NoSuchProcess:
        pass


def bootstrap_pid(bootstrap_servers: str) -> int | None:
    """The local process serving the first of ``bootstrap_servers`` (``host:port,...``), if visible."""
    return listener_pid(int(str(bootstrap_servers).split(",")[0].rpartition(":")[2]))


def listener_pid(port: int) -> int | None:
    """The process listening on a local TCP port (the broker a job reused), if visible."""
    import psutil

    try:
        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
                return c.pid
    except psutil.Error:
        return None
    return None


class ProcessSampler:
    """Samples CPU and resident memory of a set of process trees once a second."""

    def __init__(self, roots: dict[str, int], interval: float = 1.0):
        import psutil

        self.psutil, self.roots, self.interval = psutil, roots, interval
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._procs: dict[int, object] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def add(self, name: str, pid: int) -> None:
        self.roots[name] = pid

    def _tree(self, pid: int) -> list:
        try:
            p = self.psutil.Process(pid)
            return [p, *p.children(recursive=True)]
        except self.psutil.Error:
            return []

    def _run(self):
        while not self._stop.is_set():
            sample = {"t": time.time(), "cpu": {}, "rss": {}}
            for name, pid in list(self.roots.items()):
                cpu = rss = 0.0
                for p in self._tree(pid):
                    proc = self._procs.setdefault(p.pid, p)
                    try:
                        cpu += proc.cpu_percent(None)
                        rss += proc.memory_info().rss
                    except self.psutil.Error:
                        pass
                sample["cpu"][name], sample["rss"][name] = cpu, rss
            self.samples.append(sample)
            self._stop.wait(self.interval)

    def start(self):
        self.thread.start()

    def stop(self) -> dict:
        self._stop.set()
        self.thread.join(5)
        cores = os.cpu_count() or 1
        usable = self.samples[1:] or self.samples  # the first cpu_percent reading is 0 by definition
        names = sorted({n for s in usable for n in s["cpu"]})
        per = {n: {"avg_cpu_pct_of_machine": round(sum(s["cpu"].get(n, 0) for s in usable) / len(usable) / cores, 1),
                   "peak_rss_gb": round(max(s["rss"].get(n, 0) for s in usable) / 2**30, 3)} for n in names}
        total_cpu = [sum(s["cpu"].values()) / cores for s in usable]
        total_rss = [sum(s["rss"].values()) for s in usable]
        return {"processes": per, "avg_cpu_pct": round(sum(total_cpu) / len(total_cpu), 1),
                "peak_memory_gb": round(max(total_rss) / 2**30, 2), "samples": len(usable)}
