#!/usr/bin/env bash
# Submit a finlake job to Spark: local[*], a standalone master or Kubernetes.
#   ./spark-submit.sh [--env local|gpu|cluster] [--master URL] [--conf KEY=VALUE]... jobs/<job>.py [job args]
# Ships lakehouse/ml/stats/jobs as a zip through --py-files, resolves Delta and the Kafka
# connector through --packages, and passes the environment's Spark configuration.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${FINLAKE_PYTHON:-$root/.venv/bin/python}"
if [[ ! -x "$python" ]]; then
  echo "spark-submit.sh: error: no Python at $python; run 'make install' first or set FINLAKE_PYTHON" >&2
  exit 2
fi

exec "$python" -m jobs.submit "$@"
