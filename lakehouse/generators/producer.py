"""The producer: one run's shard plans from the produce options, one shard (generate, add
noise, pace, and send to Kafka or write files, counting what was sent per topic and per noise
kind), the shards run in forked processes, and their summaries summed. ``jobs/produce.py``
parses the options and shows the progress."""
from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from lakehouse.catalog import Catalog
from lakehouse.config import ConfigError
from lakehouse.generators.base import TRUTH_PREFIX, parse_start
from lakehouse.generators.noise import NoiseConfig, NoiseInjector
from lakehouse.generators.streams import DEFAULT_MIX, GeneratorConfig, generate
from lakehouse.generators.truth import TruthWriter
from lakehouse.kafka.clients import client_config, replay_retention
from lakehouse.kafka.produce import DeliveryCounter
from lakehouse.security import pan_hmac_key
from lakehouse.topology import STREAMS, names


@dataclass
class ShardPlan:
    shard: int
    shards: int
    gen: GeneratorConfig
    run_id: str
    max_messages: int | None         # stop after this many messages (this shard's share)
    duration_s: float | None         # or after this many wall seconds
    paced: bool                      # False: as fast as possible
    mode: str                        # "kafka" or "files"
    kafka_conf: dict | None = None
    files_dir: str | None = None
    truth_locations: dict | None = None
    pan_key: bytes | None = None     # files mode: PANs are tokenized before they touch disk
    topic_prefix: str = ""           # kafka mode: physical topic = prefix + logical name
    event_timestamps: bool = False   # kafka mode: record timestamp = the event's own time (a replay), not now


def run_shard(plan: ShardPlan, progress=None) -> dict:
    """Run one shard to its stop condition; returns its summary (counts, timings, errors)."""
    gen = plan.gen
    stream = generate(gen, plan.shard, plan.shards)
    truth = TruthWriter(plan.truth_locations, plan.run_id, plan.shard) if plan.truth_locations else None
    if plan.mode == "files":
        from lakehouse.security import tokenize_event

        key = plan.pan_key
        stream = (_tokenized(e, key, tokenize_event) for e in stream)

    def clean_only():
        for e in stream:
            if e.topic.startswith(TRUTH_PREFIX):
                if truth is not None:
                    truth.add(e.topic, dict(e.event))
                continue
            yield e

    messages = NoiseInjector(gen.noise, gen.seed, plan.shard).apply(clean_only())
    per_topic: Counter = Counter()
    per_noise: dict[str, Counter] = defaultdict(Counter)
    on_delivery = DeliveryCounter()
    producer = files = None
    if plan.mode == "kafka":
        from confluent_kafka import Producer

        producer = Producer({**plan.kafka_conf, "enable.idempotence": True, "acks": "all", "linger.ms": 20, "log_level": 3,
                             "batch.num.messages": 10000, "compression.type": "lz4",
                             "queue.buffering.max.messages": 500000})
    else:
        files = {}
        root = Path(plan.files_dir)

    sent = 0
    wall0 = time.perf_counter()
    sim0 = None
    deadline = wall0 + plan.duration_s if plan.duration_s else None
    for msg in messages:
        if plan.max_messages is not None and sent >= plan.max_messages:
            break
        now = time.perf_counter()
        if sim0 is None:
            sim0 = msg.at
        if plan.paced:
            due = wall0 + (msg.at - sim0)
            if due > now + 0.002:
                time.sleep(due - now)
                now = time.perf_counter()
        if deadline is not None and now >= deadline:
            break
        if producer is not None:
            while True:
                try:
                    producer.produce(plan.topic_prefix + msg.topic, value=msg.value, key=msg.key.encode() if msg.key else None,
                                     on_delivery=on_delivery, **({"timestamp": int(msg.at * 1000)} if plan.event_timestamps else {}))
                    break
                except BufferError:
                    producer.poll(0.05)
            if sent % 1000 == 0:
                producer.poll(0)
        else:
            fh = files.get(msg.topic)
            if fh is None:
                (root / msg.topic).mkdir(parents=True, exist_ok=True)
                fh = files[msg.topic] = open(root / msg.topic / f"part-{plan.run_id}-{plan.shard:03d}.jsonl", "w")
            fh.write(json.dumps({"key": msg.key, "value": msg.value.decode("utf-8", "replace"),
                                 "timestamp": round(time.time(), 3)}) + "\n")
        sent += 1
        per_topic[msg.topic] += 1
        per_noise[msg.topic][msg.noise or "clean"] += 1
        if progress is not None and sent % 2000 == 0:
            progress[plan.shard] = sent
    send_end = time.perf_counter()
    if producer is not None:
        on_delivery.failed += producer.flush(120)
    else:
        for fh in files.values():
            fh.close()
        on_delivery.delivered = sent
    end = time.perf_counter()
    if progress is not None:
        progress[plan.shard] = sent
    truth_counts = truth.close() if truth else {}
    return {"shard": plan.shard, "sent": sent, "per_topic": dict(per_topic),
            "per_noise": {t: dict(c) for t, c in per_noise.items()}, "delivered": on_delivery.delivered,
            "failed": on_delivery.failed, "errors": on_delivery.errors, "send_seconds": send_end - wall0,
            "seconds": end - wall0, "truth": truth_counts}


def _tokenized(e, key, tokenize_event):
    if e.topic == "transactions":
        e.event = tokenize_event(key, e.event)
    return e


def parse_streams(text: str) -> tuple[str, ...]:
    """A streams selection (a comma list of topics, or ``all``); ValueError naming an unknown one."""
    return tuple(names("stream", text, STREAMS))


def parse_mix(text: str | None) -> dict:
    """The default mix with ``stream=weight,...`` overrides; ValueError on an entry without ``=``."""
    mix = dict(DEFAULT_MIX)
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"mix entry '{item}' must be stream=weight")
        mix[name.strip()] = float(value)
    return mix


def plans_from(cfg, args, run_id: str) -> tuple[list[ShardPlan], str]:
    """One plan per process from the produce options (``jobs/produce.py``'s arguments), sharing
    the count, and the folder files mode writes to; ConfigError naming a bad option."""
    paced = args.rate != "max"
    try:
        rate = float(args.sim_rate) if not paced else float(args.rate)
        # Live streams start their event time now; files and backfills default to history.
        start = args.start or ("now" if args.mode == "kafka" else None)
        gen = GeneratorConfig(seed=args.seed, start=start, rate=rate,
                              streams=parse_streams(args.streams), mix=parse_mix(args.mix),
                              fraud_rate=args.fraud_rate, label_delay_s=args.label_delay,
                              threshold_bps=args.threshold_bps, n_customers=args.customers,
                              noise=NoiseConfig.parse(args.noise), world_seed=args.world_seed,
                              drift=tuple(d.strip() for d in (args.drift or "").split(",") if d.strip()),
                              drift_at=args.drift_at).validate()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.count is None and args.duration is None:
        raise ConfigError("give --count N or --duration SECONDS")
    if args.processes < 1:
        raise ConfigError(f"--processes must be at least 1, got {args.processes}")
    catalog = Catalog(cfg)
    truth = {t: catalog.spec(t).location for t in ("truth.fraud", "truth.trading", "truth.loan_pd")} if args.truth else None
    mode = "files" if args.mode in ("files", "bronze") else "kafka"
    out = args.out or str(cfg.home / "landing" / run_id)
    plans = []
    for k in range(args.processes):
        share = None
        if args.count is not None:
            share = args.count // args.processes + (1 if k < args.count % args.processes else 0)
        plans.append(ShardPlan(shard=k, shards=args.processes, gen=gen, run_id=run_id, max_messages=share,
                               duration_s=args.duration, paced=paced, mode=mode,
                               kafka_conf=client_config(cfg) if mode == "kafka" else None,
                               files_dir=out if mode == "files" else None, truth_locations=truth,
                               topic_prefix=str(cfg["kafka.topic_prefix"] or ""), event_timestamps=args.kafka_time == "event",
                               pan_key=pan_hmac_key(cfg) if mode == "files" else None))
    return plans, out


def keep_the_replay(cfg, gen: GeneratorConfig) -> str | None:
    """Event-time timestamps older than a topic's retention are deleted by the broker within
    minutes: raise the retention of the replayed topics first. Returns the notice to show
    (None when no retention had to change)."""
    oldest = parse_start(gen.start)
    changed = replay_retention(cfg, list(gen.streams), oldest)
    if not changed:
        return None
    hours = max(changed.values()) / 3_600_000
    since = dt.datetime.fromtimestamp(oldest, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    return (f"replaying from {since} UTC: retention of {', '.join(sorted(changed))} raised to {hours:,.0f} h so the "
            f"broker keeps it (set it back once bronze has caught up: these topics carry clear card numbers)")


def _worker(plan, progress, results):
    try:
        results.put(run_shard(plan, progress))
    except Exception as exc:  # reported by the parent as one line
        results.put({"shard": plan.shard, "error": f"{type(exc).__name__}: {exc}"})


class ShardProcesses:
    """Each plan run by ``run_shard`` in its own forked process, started on construction (so
    before the caller starts any thread of its own, such as a progress display's)."""

    def __init__(self, plans: list[ShardPlan]):
        ctx = mp.get_context("fork")
        self.progress = ctx.Array("q", len(plans))
        self.results = ctx.Queue()
        self.procs = [ctx.Process(target=_worker, args=(p, self.progress, self.results), daemon=True) for p in plans]
        self.started = time.perf_counter()
        for p in self.procs:
            p.start()

    def wait(self, on_progress=None, every_s: float = 0.5) -> list[dict]:
        """The shards' summaries as they finish (a failed shard's is ``{"shard", "error"}``; fewer
        than the plans when a process died without one). ``on_progress(sent, elapsed_s)`` is
        called about every ``every_s`` seconds meanwhile."""
        collected = []
        while len(collected) < len(self.procs):
            try:
                collected.append(self.results.get(timeout=every_s))
            except Exception:
                pass
            if on_progress is not None:
                on_progress(sum(self.progress), time.perf_counter() - self.started)
            if not any(p.is_alive() for p in self.procs) and self.results.empty() and len(collected) < len(self.procs):
                break
        for p in self.procs:
            p.join(10)
        return collected


def summarize(results: list[dict], args, run_id: str) -> dict:
    """The run's summary: the shards' counts summed, their first errors, the achieved rate."""
    per_topic: Counter = Counter()
    per_noise: dict[str, Counter] = {}
    truth: Counter = Counter()
    for r in results:
        per_topic.update(r["per_topic"])
        for t, c in r["per_noise"].items():
            per_noise.setdefault(t, Counter()).update(c)
        truth.update(r["truth"])
    # Seconds until the last shard's last message was acknowledged by the broker.
    seconds = max(r["seconds"] for r in results)
    sent = sum(r["sent"] for r in results)
    return {"run_id": run_id, "mode": args.mode, "processes": len(results), "target_rate": args.rate,
            "sent": sent, "delivered": sum(r["delivered"] for r in results), "failed": sum(r["failed"] for r in results),
            "errors": [e for r in results for e in r["errors"]][:5], "seconds": round(seconds, 3),
            "achieved_rate": round(sent / seconds, 1) if seconds > 0 else None,
            "per_topic": dict(sorted(per_topic.items())),
            "per_noise": {t: dict(sorted(c.items())) for t, c in sorted(per_noise.items())},
            "truth": dict(sorted(truth.items())), "seed": args.seed}
