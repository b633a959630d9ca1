#!/usr/bin/env bash
# POST /v1/batch fed by Segment's Node SDK (tests/sdk/bench.mjs), batches of 100, on loopback.
# Usage: bench/tracking.sh [DATABASE_URL]   (default: a fresh SQLite file)
# EVENTS (per run, default 100000) and RUNS ("new recurring" by default: every person new with
# two events each, then 10,000 recurring people) change it. Builds the release binary (or runs
# $CUSTODIA_BIN); installs the SDK from tests/sdk/package-lock.json. Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${CUSTODIA_BIN:-}" ]; then bin=$CUSTODIA_BIN; else cargo build --release --quiet; bin=${CARGO_TARGET_DIR:-target}/release/custodia; fi
[ -d tests/sdk/node_modules/@segment/analytics-node ] || (cd tests/sdk && npm ci --no-audit --no-fund)
work=$(mktemp -d)
port=${BENCH_PORT:-18081}
export CUSTODIA_DATA_DIR="$work/data" CUSTODIA_POLICY_DIR="$PWD/policies" CUSTODIA_BIND="127.0.0.1:$port"
export CUSTODIA_RATE_LIMIT=0
if [ -n "${1:-}" ]; then export CUSTODIA_DATABASE_URL="$1"; fi
"$bin" migrate
key=$("$bin" keys create --role collector --name bench-sdk 2>/dev/null)
"$bin" serve 2>"$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
echo "| people | events | seconds | events/s | failed | server peak RSS |"
echo "|---|---|---|---|---|---|"
for kind in ${RUNS:-new recurring}; do
  people=0
  [ "$kind" = recurring ] && people=10000
  out=$(cd tests/sdk && HOST="http://127.0.0.1:$port" WRITE_KEY="$key" EVENTS="${EVENTS:-100000}" \
    PEOPLE=$people RUN="$kind-$$" node bench.mjs)
  rss=$(grep VmHWM "/proc/$server/status" | awk '{printf "%.0f MiB", $2/1024}')
  python3 - "$out" "$kind" "$rss" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"| {sys.argv[2]} (Node SDK) | {r['events']} | {r['seconds']:.1f} | {r['per_second']:,} | {r['failed']} | {sys.argv[3]} |")
PY
done
# The server's own capacity, without the SDK's cost: wrk posting the same batches of 100 (50 new
# people each), 2 threads, 8 connections.
if command -v wrk >/dev/null; then
  basic=$(printf '%s:' "$key" | base64 -w0)
  summary=$(OP=tracking_batch RUN="wrk-$$" WRITE_KEY_BASIC="$basic" TOKEN=unused \
    wrk -t2 -c8 -d"${DURATION:-10s}" -s bench/api.lua "http://127.0.0.1:$port" | grep -E '^(requests|throughput)')
  rss=$(grep VmHWM "/proc/$server/status" | awk '{printf "%.0f MiB", $2/1024}')
  python3 - "$summary" "$rss" <<'PY'
import re, sys
s = sys.argv[1]
n, errors, seconds = re.search(r"requests: (\d+), errors: (\d+) .*duration: ([\d.]+) s", s).groups()
events = int(n) * 100
print(f"| new, 2 per person (wrk, 8 connections) | {events} | {float(seconds):.1f} | {round(events / float(seconds)):,} | {errors} | {sys.argv[2]} |")
PY
fi
