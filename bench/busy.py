"""The short demo on a busy machine: a process burning one core runs beside it, and every stream
must still reconcile (produced = bronze = silver + quarantine + duplicates dropped).

    python -m bench.busy                  # one burner, one run
    python -m bench.busy --burners 1 --runs 3

Each run uses its own FINLAKE_HOME under ``<home>/busy/`` and topic prefix, and the short demo's
arguments (``jobs.demo.SHORT_DEMO_ARGV``, the ones the CI test uses). Writes
``bench/results/busy.json``. Exits non-zero with one line when a run fails or does not reconcile,
naming the stream and by how much.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _burn() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)


def shortfalls(summary: dict) -> list[str]:
    """Every stream that does not reconcile, with the gap."""
    out = []
    for stream, c in summary.get("counts", {}).items():
        accounted = c["silver"] + c["quarantine"] + c["duplicates_dropped"]
        if c["bronze"] != c["produced"]:
            out.append(f"{stream}: bronze {c['bronze']:,} of {c['produced']:,} produced ({c['produced'] - c['bronze']:+,})")
        if accounted != c["bronze"]:
            out.append(f"{stream}: silver + quarantine + duplicates {accounted:,} of {c['bronze']:,} in bronze "
                       f"({c['bronze'] - accounted:+,})")
    return out


def one_run(i: int, burners: int, home: Path, timeout: float) -> dict:
    from jobs.demo import SHORT_DEMO_ARGV

    run_home = home / f"run{i}-{int(time.time())}"
    env = dict(os.environ, FINLAKE_HOME=str(run_home))
    argv = [*SHORT_DEMO_ARGV, "--conf", f"kafka.topic_prefix=busy{i}_{int(time.time())}_"]
    procs = [_burn() for _ in range(burners)]
    t0 = time.monotonic()
    try:
        out = subprocess.run([sys.executable, "jobs/demo.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=timeout)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    seconds = round(time.monotonic() - t0, 1)
    summary_path = run_home / "reports" / "demo" / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    last = (out.stderr.strip().splitlines() or [""])[-1]
    return {"run": i, "burners": burners, "rc": out.returncode, "seconds": seconds, "reconciled": summary.get("reconciled"),
            "shortfalls": shortfalls(summary), "error": last if out.returncode else None,
            "decisions": {k: {"decisions": v["decisions"], "valid_live": v["valid_live"]} for k, v in summary.get("decisions", {}).items()},
            "loan_pd_scored": summary.get("scoring", {}).get("loan_pd", {}).get("scored"), "home": str(run_home)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--burners", type=int, default=1, help="processes each burning one core beside the demo")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds a run may take")
    p.add_argument("--home", default=None, help="default: $FINLAKE_HOME/busy")
    args = p.parse_args(argv)
    if args.burners < 0 or args.runs < 1:
        print("busy: --burners must be >= 0 and --runs >= 1", file=sys.stderr)
        return 2
    home = Path(args.home or Path(os.environ.get("FINLAKE_HOME", ROOT / ".finlake")) / "busy").resolve()
    results = []
    for i in range(args.runs):
        r = one_run(i, args.burners, home, args.timeout)
        results.append(r)
        state = "reconciled" if r["rc"] == 0 and r["reconciled"] and not r["shortfalls"] else "NOT reconciled"
        print(f"busy: run {i + 1} of {args.runs} beside {args.burners} burning core(s): {state} in {r['seconds']:.0f} s", flush=True)
    out = ROOT / "bench" / "results" / "busy.json"
    out.write_text(json.dumps({"runs": results}, indent=2))
    failed = [r for r in results if r["rc"] != 0 or not r["reconciled"] or r["shortfalls"]]
    if failed:
        r = failed[0]
        why = "; ".join(r["shortfalls"]) or r["error"] or "the demo did not say it reconciled"
        print(f"busy: {len(failed)} of {len(results)} runs fell short; run {r['run'] + 1}: {why}", file=sys.stderr)
        return 1
    print(f"busy: every run reconciled ({out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
