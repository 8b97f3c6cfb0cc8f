"""Run the real-time decision paths: Kafka -> per-key state -> gate -> champion -> Kafka, one
streaming plan each, and land every decision in Delta exactly once.

    python jobs/decide.py                          # fraud, trading and loan PD, until stopped (Ctrl-C / SIGTERM)
    python jobs/decide.py --use-cases fraud --timeout 600
    python jobs/decide.py --from earliest          # a new checkpoint starts at the topics' start

Decisions go to the Kafka topics fraud_decisions, trading_signals and loan_decisions (each loan
application's probability of default), keyed by event id, at least once (a batch replayed after
a crash sends its decisions again, equal); fraud alerts, with their top feature contributions,
to fraud_alerts (explained off the decision plan). The landing queries keep one row per (event
id, model version) in gold.fraud_scores, gold.trading_signals and gold.loan_pd_scores; refused
rows (failed the gate) go to quarantine.scoring.
"""
from __future__ import annotations

import sys
import time

from jobs import common
from lakehouse.kafka.broker import ensure_broker
from lakehouse.runtime import StreamingRun
from lakehouse.topology import DECISION_PATHS
from serving.start import start_decision_paths


def _use_cases(text: str) -> list[str]:
    return common.pick("use case", text, DECISION_PATHS)


def run(spark, cfg, args) -> dict:
    use_cases = _use_cases(args.use_cases)
    ensure_broker(cfg)
    started = time.monotonic()
    common.live_metrics(spark, cfg, "decide")
    run = StreamingRun(spark, cfg, "decide")
    start_decision_paths(run, use_cases, args.starting_offsets, land=not args.no_landing)
    print(f"decide: {len(run.queries)} queries running ({', '.join(q.name for q in run.queries)}); stop with Ctrl-C", flush=True)
    stop = common.stop_flag()
    restarts = run.supervise(lambda: stop["stop"] or (args.timeout is not None and time.monotonic() - started >= args.timeout),
                             every_s=1.0)
    return {"use_cases": use_cases, "seconds": round(time.monotonic() - started, 1), "restarts": restarts}


def build_parser():
    p = common.parser(__doc__)
    p.add_argument("--use-cases", default="fraud,trading", help="decision paths: fraud, trading, a comma list, or all")
    p.add_argument("--from", dest="starting_offsets", choices=["latest", "earliest"], default="latest",
                   help="where a new checkpoint starts reading its topics")
    p.add_argument("--no-landing", action="store_true", help="do not run the Kafka -> Delta landing queries")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    return p


def main(argv=None):
    p = build_parser()
    result = common.execute(p, argv, run, app_name="finlake-decide")
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
