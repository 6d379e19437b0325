#!/usr/bin/env bash
# The serving benchmark: aimass against `mlflow models serve`, BentoML and a bare
# FastAPI app, on three models, one worker pinned to core 0, wrk on core 1.
#
#   bash benchmarks/serving/run.sh [--duration 15] [--quick] [bench.py options]
#
# Rerunnable on a fresh machine: installs wrk (apt), aimass's .venv (make install),
# the peers' .venv-peers (requirements-peers.txt), trains the models, runs
# bench.py, and writes benchmarks/serving/RESULTS.md. See benchmarks/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PEERS="$HERE/.venv-peers"
PYTHON="${PYTHON:-python3}"

say() { printf '== %s\n' "$*"; }

if [ "$(nproc)" -lt 2 ]; then
  echo "the serving benchmark needs 2 cores (server on core 0, load generator on core 1)" >&2
  exit 1
fi

# wrk, the load generator, and taskset (util-linux) for pinning.
if ! command -v wrk >/dev/null 2>&1 || ! command -v taskset >/dev/null 2>&1; then
  say "installing wrk"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk util-linux
fi

# aimass itself, from the repository's .venv (make install: a no-op when up to date).
make -s -C "$ROOT" install

# The peers, in their own virtual environment; reinstalled when the pins change.
stamp="$PEERS/.requirements.sha256"
want="$(sha256sum "$HERE/requirements-peers.txt" | cut -d' ' -f1)"
if [ ! -x "$PEERS/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing the peers into $PEERS (a few minutes the first time)"
  "$PYTHON" -m venv "$PEERS"
  "$PEERS/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  # pip may print "Location ... is ignored" warnings for local indexes: harmless.
  "$PEERS/bin/python" -m pip install -q -r "$HERE/requirements-peers.txt" 2>&1 \
    | grep -v "is ignored" || true
  "$PEERS/bin/python" -c "import mlflow, bentoml, fastapi, uvicorn, sklearn, torch, onnx, skl2onnx"
  echo "$want" > "$stamp"
fi

# The three models, in every server's format; retrained when models.py changes.
mstamp="$HERE/work/.models.sha256"
mwant="$(cat "$HERE/models.py" "$HERE/requirements-peers.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$HERE/work/expected.json" ] || [ "$(cat "$mstamp" 2>/dev/null)" != "$mwant" ]; then
  say "training and saving the models"
  (cd "$HERE" && "$PEERS/bin/python" models.py 2>&1 | grep -v "WARNING mlflow" || true)
  test -f "$HERE/work/expected.json"
  echo "$mwant" > "$mstamp"
fi

say "benchmarking"
cd "$HERE"
exec "$PEERS/bin/python" bench.py --command-line "bash benchmarks/serving/run.sh $*" "$@"
