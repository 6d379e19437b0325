#!/usr/bin/env bash
# The jobs benchmark: aimass's scheduler + local executor (SQLite, PostgreSQL) beside
# Ray 2.60 (tasks and Ray Jobs), on this machine, and where one trivial job's time goes.
#
#   bash benchmarks/jobs/run.sh [--quick] [--skip-ray] [--skip-postgres] [--skip-whatif]
#                               [--skip-trace] [--quiet-wait SECONDS]
#
# Needs aimass's .venv (make install) with ray[default]==2.60.0 in it, and for the
# PostgreSQL run a server on 127.0.0.1:5432 that lets user postgres in without a
# password (skipped with a note when there is none). Writes benchmarks/jobs/RESULTS.md
# (--quick: work/RESULTS-quick.md); raw numbers in work/results.json. See README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="$ROOT/.venv/bin/python"

if [ ! -x "$PY" ]; then
  make -s -C "$ROOT" install
fi
if ! "$PY" -c "import ray, httpx; assert ray.__version__ == '2.60.0', ray.__version__" 2>/dev/null; then
  echo "== installing ray[default]==2.60.0 into $ROOT/.venv"
  "$PY" -m pip install -q "ray[default]==2.60.0"
fi

args=("$@")
if [[ " $* " != *" --skip-postgres "* ]]; then
  if ! "$PY" -c "import psycopg; psycopg.connect('postgresql://postgres@127.0.0.1:5432/postgres', connect_timeout=3).close()" 2>/dev/null; then
    echo "== no PostgreSQL on 127.0.0.1:5432 for user postgres: skipping the PostgreSQL run"
    args+=(--skip-postgres)
  fi
fi

cd "$HERE"
exec "$PY" bench.py --command-line "bash benchmarks/jobs/run.sh $*" "${args[@]}"
