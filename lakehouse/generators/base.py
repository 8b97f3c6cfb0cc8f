"""What every generator yields: a message for a topic, or a ground-truth record, stamped with
the (simulated) time at which it happens, so several streams merge in time order."""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Iterator

TRUTH_PREFIX = "truth."


@dataclass(order=True)
class Emitted:
    at: float                 # epoch seconds (simulated) when this is sent / recorded
    seq: int                  # tie-breaker: keeps generation order for equal times
    topic: str                # Kafka topic, or "truth.<table>" for ground truth
    key: str | None
    event: dict

    @property
    def is_truth(self) -> bool:
        return self.topic.startswith(TRUTH_PREFIX)


def iso_ms(epoch: float) -> str:
    """UTC ISO-8601 with milliseconds and a Z."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_start(start: str | datetime | float | None) -> float:
    if start is None:
        return datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    if isinstance(start, (int, float)):
        return float(start)
    if isinstance(start, datetime):
        return start.timestamp()
    if start == "now":
        return datetime.now(timezone.utc).timestamp()
    try:
        return float(start)
    except ValueError:
        pass
    return datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()


class Scheduler:
    """A time-ordered queue of future emissions (scenario steps, delayed labels)."""

    def __init__(self):
        self._heap: list[Emitted] = []
        self._seq = itertools.count()

    def push(self, at: float, topic: str, key: str | None, event: dict) -> None:
        heapq.heappush(self._heap, Emitted(at, next(self._seq), topic, key, event))

    def peek_time(self) -> float:
        return self._heap[0].at if self._heap else float("inf")

    def pop(self) -> Emitted:
        return heapq.heappop(self._heap)

    def __len__(self) -> int:
        return len(self._heap)


def merge(streams: Iterable[Iterator[Emitted]]) -> Iterator[Emitted]:
    """Merge time-ordered generators into one time-ordered stream."""
    return heapq.merge(*streams, key=lambda e: e.at)
