"""Train the fraud, trading-signal and loan-PD models from gold, judge them on a held-out test
period against a baseline and the ceiling, log them to MLflow and apply the promotion rule.

    python jobs/train.py --use-case all
    python jobs/train.py --use-case fraud --conf ml.search.folds=3
    python jobs/train.py --env gpu --use-case trading      # xgboost on CUDA, RAPIDS for the SQL
    python jobs/train.py --use-case trading --model sequence   # the BiLSTM challenger (the 'sequence' extra)
"""
from __future__ import annotations

import sys
import time

from rich.console import Console

from jobs import common


def parse_use_cases(text: str) -> list[str]:
    from lakehouse.topology import USE_CASES  # pyspark (via lakehouse.gold): +0.7 s at import; --help stays quick

    return common.pick("use case", text, USE_CASES)


def summary_line(result: dict) -> str:
    m = result["metrics"]
    if result["use_case"] == "fraud":
        key = ("roc_auc", "pr_auc", "f1")
    elif result["use_case"] == "trading":
        key = ("auc_macro", "macro_f1", "log_loss")
    else:
        key = ("rmse_vs_true_pd", "roc_auc", "brier")
    parts = [f"{who} " + " ".join(f"{k}={m[who][k]:.4f}" for k in key if m[who].get(k) is not None)
             for who in m]
    if not result.get("ceiling_available", True):
        parts.append("ceiling not available (no generator truth for these rows)")
    vs = result.get("vs_baseline")
    if vs:
        parts.append(f"xgboost vs baseline: {vs['test']} p = {vs['p_value']:.3g}: "
                     + ("significantly better" if vs["significant"] else f"NOT significantly better at alpha {vs['alpha']}"))
    groups = (result.get("feature_groups") or {}).get("groups")
    if groups:
        parts.append(f"feature groups (share of gain / validation {result['feature_groups']['metric']} lost without): " + ", ".join(
            f"{g} {v['gain_share']:.2f}" + (f"/{v['loss_without']:+.3f}" if "loss_without" in v else "") for g, v in groups.items()))
    promo = result["promotion"]
    return (f"{result['use_case']}: {result['model']['name']} v{result['model']['version']} "
            f"({'champion' if promo['promote'] else 'challenger'}: {promo['reason']})\n    " + "\n    ".join(parts))


def sequence_summary(result: dict) -> str:
    """The sequence challenger's lines: its metrics beside the champion's, and the paired test."""
    key = ("auc_macro", "macro_f1", "log_loss")
    m = result["metrics"]
    vs = result["vs_champion"]
    champ = f"xgboost champion v{result['champion']['version']}"
    lines = [f"{who} " + " ".join(f"{k}={m[who][k]:.4f}" for k in key if m[who].get(k) is not None) for who in m]
    if not result["ceiling_available"]:
        lines.append("ceiling not available (no generator truth for these rows)")
    lines.append(f"sequence vs {champ}: {vs['test']} p = {vs['p_value']:.3g}: "
                 + ("beats it" if vs["beats_champion"] else f"does NOT beat it ({vs['reason'].rsplit('; ', 1)[-1]})"))
    model = result["model"]
    return (f"trading: {model['name']} v{model['version']} ({model['alias']}; best epoch {result['best_epoch']} of "
            f"{len(result['history'])}, {result['seconds']['fit']:,.0f} s)\n    " + "\n    ".join(lines))


def check_model(model: str, names: list[str], as_of: float | None = None) -> None:
    """--model sequence trains the trading challenger only, on every label, and needs its extra."""
    if model == "sequence":
        if names != ["trading"]:
            common.fail("--model sequence trains the trading use case only: use --use-case trading")
        if as_of is not None:
            common.fail("--as-of applies to the xgboost models only (trading labels come from the ticks that follow)")
        from ml.sequence import SequenceUnavailable, load_keras  # pandas: +1.3 s at import; only --model sequence

        try:
            load_keras()
        except SequenceUnavailable as exc:
            common.fail(str(exc))


def run(spark, cfg, args) -> dict:
    # pyspark, pandas, sklearn: +4.6 s at import; --help stays quick
    from ml.datasets import LeakageError, TrainingDataError
    from ml.train import train_use_case

    names = parse_use_cases(args.use_case)
    model = getattr(args, "model", "xgboost")
    check_model(model, names, getattr(args, "as_of", None))
    console = Console(stderr=True)
    results = {}
    started = time.perf_counter()
    for name in names:
        with console.status(f"[bold]{name}[/]: starting") as status:
            def step(msg, n=name, st=status):
                st.update(f"[bold]{n}[/]: {msg} ({time.perf_counter() - started:,.0f} s)")
                console.log(f"{n}: {msg}")

            try:
                if model == "sequence":
                    from ml.sequence import train_sequence  # pandas: +1.3 s at import; only --model sequence

                    results[name] = train_sequence(spark, cfg, step)
                else:
                    results[name] = train_use_case(spark, cfg, name, args.as_of, step)
            except (TrainingDataError, LeakageError) as exc:
                common.fail(str(exc))
        print(sequence_summary(results[name]) if model == "sequence" else summary_line(results[name]), flush=True)
    return {"use_cases": results, "seconds": round(time.perf_counter() - started, 1)}


def build_parser():
    p = common.parser(__doc__)
    p.add_argument("--use-case", default="all", help="fraud, trading, loan_pd, a comma list, or all")
    p.add_argument("--as-of", type=float, default=None,
                   help="epoch seconds: train only on labels known at this time (default: every label in the tables)")
    p.add_argument("--model", default="xgboost", choices=("xgboost", "sequence"),
                   help="xgboost (the served models), or sequence: the trading BiLSTM challenger, judged against the "
                        "xgboost champion")
    return p


def main(argv=None):
    p = build_parser()
    args_probe = p.parse_args(argv)
    check_model(args_probe.model, parse_use_cases(args_probe.use_case), args_probe.as_of)  # fail on a bad name before Spark starts
    result = common.execute(p, argv, run, app_name="finlake-train")
    common.emit(result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
