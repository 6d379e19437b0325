#!/usr/bin/env bash
# A/B of the tiny-model point: a git ref's src/ against this checkout's, same .venv, both
# servers up at once (core 0), wrk -t1 -c64 on core 1, rounds alternating; prints req/s and
# requests per server CPU-second (steadier than req/s on a shared machine).
#
#   [C=64] bash benchmarks/serving/ab_cpu.sh [REF=main] [ROUNDS=4] [SECONDS=5]   (C: connections)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
REF=${1:-main}; ROUNDS=${2:-4}; SECS=${3:-5}; C=${C:-64}
WORK=$(mktemp -d /tmp/ab-cpu.XXXX)
cd "$ROOT"
git archive "$REF" src | tar -x -C "$WORK"
.venv/bin/python - > "$WORK/body.json" <<'PY'
import json
from sklearn.datasets import load_breast_cancer
x = load_breast_cancer().data[:1].astype("float32")[0].tolist()
print(json.dumps({"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": x}]}))
PY
declare -A PORT=([ref]=18580 [here]=18581) SRC=([ref]="$WORK/src" [here]="$ROOT/src") PID=()
for n in ref here; do
  mkdir -p "$WORK/home-$n"
  AIMASS_HOME="$WORK/home-$n" AIMASS_JOBS=false PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="${SRC[$n]}" \
    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python -m aimass server --demo --port "${PORT[$n]}" \
    > "$WORK/$n.log" 2>&1 &
  PID[$n]=$!
done
trap 'kill ${PID[ref]} ${PID[here]} 2>/dev/null; rm -rf "$WORK"' EXIT
ready() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$WORK/home-$1/token" 2>/dev/null)" \
  "http://127.0.0.1:${PORT[$1]}/v2/models/breast-cancer-onnx/ready" || true; }
for n in ref here; do for _ in $(seq 1 240); do [ "$(ready $n)" = 200 ] && break; sleep 0.5; done; done
ticks() { local t=0; for f in /proc/$1/task/*/stat; do t=$((t + $(awk '{print $14+$15}' "$f"))); done; echo $t; }
hz=$(getconf CLK_TCK)
echo "# $REF ($(git rev-parse --short "$REF")) vs this checkout ($(git rev-parse --short HEAD)+), c=$C, ${SECS} s rounds"
for r in $(seq 1 "$ROUNDS"); do for n in ref here; do
  t0=$(ticks "${PID[$n]}")
  out=$(BENCH_BODY="$WORK/body.json" BENCH_TOKEN="$(cat "$WORK/home-$n/token")" taskset -c 1 wrk -t1 -c"$C" \
    -d"${SECS}s" -s "$HERE/loadgen.lua" "http://127.0.0.1:${PORT[$n]}/v2/models/breast-cancer-onnx/infer" | grep BENCH_JSON)
  t1=$(ticks "${PID[$n]}")
  ok=$(echo "$out" | python3 -c "import sys,json; d=json.loads(sys.stdin.read().split(' ',1)[1]); print(d['requests']-d['errors']['status'])")
  echo "round $r $n: $((ok / SECS)) req/s, $((ok * hz / (t1 - t0 + 1))) req per server CPU-s, load $(cut -d' ' -f1 /proc/loadavg)"
done; done
