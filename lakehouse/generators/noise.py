"""Bad input on demand: malformed JSON, missing or mistyped fields, duplicates, late and
out-of-order events, and unknown extra fields, each at a configurable fraction, so the
pipeline's handling of every kind can be tested. At most one kind touches a message."""
from __future__ import annotations

import json
import random
import heapq
import itertools
from dataclasses import asdict, dataclass, fields
from typing import Iterator

from lakehouse.generators.base import Emitted, iso_ms
from lakehouse.schemas.events import FIELD_DEFAULTS, MESSAGE_SCHEMAS

KINDS = ("malformed", "missing_field", "mistyped", "duplicate", "late", "out_of_order", "unknown_field")
_NUMERIC = ("amount", "price", "size", "bid", "ask", "bid_size", "ask_size", "credit_score", "utilisation",
            "delinquencies", "inquiries_6m", "annual_income", "debt_to_income", "loan_amount", "term_months", "lat", "lon")


@dataclass
class NoiseConfig:
    malformed: float = 0.0
    missing_field: float = 0.0
    mistyped: float = 0.0
    duplicate: float = 0.0
    late: float = 0.0
    out_of_order: float = 0.0
    unknown_field: float = 0.0
    late_by_s: float = 7200.0        # how far a late event's time lies behind the stream
    out_of_order_depth: int = 20     # how many messages an out-of-order one is held back

    @classmethod
    def parse(cls, text: str | None) -> "NoiseConfig":
        """``malformed=0.01,duplicate=0.02`` (or ``all=0.01``) -> NoiseConfig; one-line errors."""
        cfg = cls()
        if not text:
            return cfg
        known = {f.name for f in fields(cls)}
        for item in text.split(","):
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep:
                raise ValueError(f"noise setting '{item}' must be kind=fraction")
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"noise setting '{name}' needs a number, got '{value}'") from None
            if name == "all":
                for kind in KINDS:
                    setattr(cfg, kind, number)
            elif name in known:
                setattr(cfg, name, int(number) if name == "out_of_order_depth" else number)
            else:
                raise ValueError(f"unknown noise kind '{name}' (known: {', '.join(KINDS)}, late_by_s, out_of_order_depth)")
        total = sum(getattr(cfg, k) for k in KINDS)
        if any(getattr(cfg, k) < 0 for k in KINDS) or total > 1:
            raise ValueError(f"noise fractions must be >= 0 and add up to at most 1, got {total:g}")
        return cfg

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Message:
    topic: str
    key: str | None
    value: bytes
    event_id: str | None
    noise: str | None       # the kind applied, or None for a clean message
    at: float


class NoiseInjector:
    """Turns clean emissions into messages, applying noise by the configured fractions."""

    def __init__(self, cfg: NoiseConfig, seed: int, shard: int = 0):
        self.cfg = cfg
        self.rng = random.Random(f"noise-{seed}-{shard}")
        self.cum = []
        acc = 0.0
        for kind in KINDS:
            acc += getattr(cfg, kind)
            self.cum.append((acc, kind))
        self.active = acc > 0

    def _kind(self) -> str | None:
        if not self.active:
            return None
        u = self.rng.random()
        for edge, kind in self.cum:
            if u < edge:
                return kind
        return None

    def _encode(self, event: dict) -> bytes:
        return json.dumps(event, separators=(",", ":")).encode()

    def apply(self, stream: Iterator[Emitted]) -> Iterator[Message]:
        held: list[tuple[int, int, Message]] = []  # (release after n messages, seq, message)
        seq = itertools.count()
        count = 0
        for e in stream:
            kind = self._kind()
            event = e.event
            if kind == "malformed":
                raw = self._encode(event)
                value = raw[: self.rng.randint(1, max(1, len(raw) - 2))]
            elif kind == "missing_field":
                # A field with a documented default is not missing when left out: silver fills it.
                defaults = FIELD_DEFAULTS.get(e.topic, {})
                required = [f.name for f in MESSAGE_SCHEMAS[e.topic].fields
                            if not f.nullable and f.name in event and f.name not in defaults]
                event = dict(event)
                event.pop(self.rng.choice(required))
                value = self._encode(event)
            elif kind == "mistyped":
                candidates = [k for k in event if k in _NUMERIC and event[k] is not None] or \
                             [k for k in ("event_time", "labelled_at", "is_fraud") if k in event]
                event = dict(event)
                name = self.rng.choice(candidates)
                event[name] = "n/a" if name in _NUMERIC else "not-a-time" if name.endswith(("time", "_at")) else "maybe"
                value = self._encode(event)
            elif kind == "late" and "event_time" in event:
                event = dict(event, event_time=iso_ms(e.at - self.cfg.late_by_s))
                value = self._encode(event)
            elif kind == "unknown_field":
                event = dict(event, x_schema_v2=f"extra-{self.rng.randrange(1000)}")
                value = self._encode(event)
            else:
                if kind == "late":  # a stream without event time cannot be late
                    kind = None
                value = self._encode(event)
            msg = Message(e.topic, e.key, value, e.event.get("event_id"), kind, e.at)
            count += 1
            if kind == "out_of_order":
                heapq.heappush(held, (count + self.rng.randint(2, max(2, self.cfg.out_of_order_depth)), next(seq), msg))
            else:
                yield msg
            if kind == "duplicate":
                copy = Message(msg.topic, msg.key, msg.value, msg.event_id, "duplicate_copy", msg.at)
                heapq.heappush(held, (count + self.rng.randint(1, max(1, self.cfg.out_of_order_depth)), next(seq), copy))
            while held and held[0][0] <= count:
                yield heapq.heappop(held)[2]
        while held:
            yield heapq.heappop(held)[2]
