"""The local background services' process plumbing (the Kafka broker, the SQL server): is a
port answering, and stop a process politely, then firmly."""
from __future__ import annotations

import os
import signal
import socket


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


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
