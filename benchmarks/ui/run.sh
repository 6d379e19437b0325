#!/usr/bin/env bash
# The web UI benchmark (see bench.py): SQLite, then PostgreSQL when 127.0.0.1:5432 answers.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
make -s -C "$ROOT" ui
"$ROOT/.venv/bin/python" "$HERE/bench.py" --backend sqlite "$@"
if "$ROOT/.venv/bin/python" -c "import psycopg; psycopg.connect('postgresql://postgres@127.0.0.1:5432/test', connect_timeout=3)" 2>/dev/null; then
  "$ROOT/.venv/bin/python" "$HERE/bench.py" --backend postgresql "$@"
fi
