#!/usr/bin/env bash
# aimass alone, on one checkout: the demo's ONNX model over /v2 infer, no peers to install.
# Server (1 worker) pinned to core 0, wrk -t1 on core 1, c=1/16/64, 10 s each. For before/after
# comparisons of a change: bash benchmarks/serving/aimass_only.sh CHECKOUT LABEL
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT=$(cd "${1:-$HERE/../..}" && pwd); LABEL=${2:-aimass}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
HOME_DIR=$(mktemp -d /tmp/abhome.XXXX)
PORT=18080
cd "$ROOT"
AIMASS_HOME=$HOME_DIR AIMASS_JOBS=false taskset -c 0 .venv/bin/aimass server --demo --port $PORT > /tmp/aimass-only-$LABEL.server.log 2>&1 &
PID=$!
for i in $(seq 1 120); do
  curl -sf http://127.0.0.1:$PORT/v2/health/ready >/dev/null && break; sleep 0.5; done
TOKEN=$(cat $HOME_DIR/token)
for i in $(seq 1 120); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$PORT/v2/models/breast-cancer-onnx/ready || true)
  [ "$code" = 200 ] && break; sleep 0.5; done
.venv/bin/python - > /tmp/aimass-only-body.json <<'PY'
import json
from sklearn.datasets import load_breast_cancer
x = load_breast_cancer().data[:1].astype("float32").tolist()
print(json.dumps({"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": x[0]}]}))
PY
NAME=$(curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$PORT/v2/models/breast-cancer-onnx | python3 -c "import json,sys; print(json.load(sys.stdin)['inputs'][0]['name'])")
sed -i "s/\"name\": \"X\"/\"name\": \"$NAME\"/" /tmp/aimass-only-body.json
curl -s -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" -d @/tmp/aimass-only-body.json http://127.0.0.1:$PORT/v2/models/breast-cancer-onnx/infer | head -c 200; echo
BENCH_BODY=/tmp/aimass-only-body.json BENCH_TOKEN=$TOKEN taskset -c 1 wrk -t1 -c16 -d3s -s "$HERE/loadgen.lua" http://127.0.0.1:$PORT/v2/models/breast-cancer-onnx/infer > /dev/null
for c in 1 16 64; do
  out=$(BENCH_BODY=/tmp/aimass-only-body.json BENCH_TOKEN=$TOKEN taskset -c 1 wrk -t1 -c$c -d10s --latency -s "$HERE/loadgen.lua" http://127.0.0.1:$PORT/v2/models/breast-cancer-onnx/infer | grep BENCH_JSON)
  echo "$LABEL c=$c $out"
done
kill $PID; wait $PID 2>/dev/null || true
rm -rf $HOME_DIR
