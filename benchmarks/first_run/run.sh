#!/usr/bin/env bash
# How long `make run` takes from a fresh clone until the server answers (issue 11, item 8).
#
# Clones this repository (committed state) into a temporary folder, runs `make run` there
# in the background with its own AIMASS_HOME and port, and polls until the server is live
# (GET /v2/health/live) and until the demo model answers a prediction. Prints both figures
# in seconds. The pip cache (or the local wheel mirror) is what makes it fast: run it once
# to warm it, then again for the figure. Usage: benchmarks/first_run/run.sh [PORT]
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
port="${1:-18080}"
work="$(mktemp -d)"
trap 'kill -- -"$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

git clone -q "$repo" "$work/clone"
export AIMASS_HOME="$work/home" AIMASS_PORT="$port"
url="http://127.0.0.1:$port"
start=$(date +%s.%N)
( cd "$work/clone" && exec setsid make run >"$work/make-run.log" 2>&1 ) &
pid=$!

elapsed() { echo "$(date +%s.%N) - $start" | bc; }
live="" demo=""
for _ in $(seq 1 1200); do
    if [ -z "$live" ] && curl -fs "$url/v2/health/live" >/dev/null 2>&1; then
        live=$(elapsed)
    fi
    if [ -n "$live" ] && [ -s "$AIMASS_HOME/token" ] && curl -fs -o /dev/null \
        -H "Authorization: Bearer $(cat "$AIMASS_HOME/token")" -H "Content-Type: application/json" \
        -d '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}' \
        "$url/api/v1/deployments/iris-classifier/predict"; then
        demo=$(elapsed)
        break
    fi
    kill -0 "$pid" 2>/dev/null || { echo "make run stopped:"; tail -20 "$work/make-run.log"; exit 1; }
    sleep 0.25
done
[ -n "$demo" ] || { echo "no answer in 300 s:"; tail -20 "$work/make-run.log"; exit 1; }
installed=$(echo "$(stat -c %Y "$work/clone/.venv/.core") - ${start%.*}" | bc)
printf 'make run from a fresh clone: core installed after ~%d s, server live after %.1f s, ' \
    "$installed" "$live"
printf 'demo model answered after %.1f s (load average: %s)\n' "$demo" "$(cut -d' ' -f1-3 /proc/loadavg)"
echo "venv size: $(du -sh "$work/clone/.venv" | cut -f1)"
