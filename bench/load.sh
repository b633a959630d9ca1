#!/usr/bin/env bash
# One kind of request at 32 concurrent connections, with wrk on loopback.
# Usage: bench/load.sh SCRIPT [DATABASE_URL]   (default database: a fresh SQLite file)
#   SCRIPT: bench/post-interaction.lua (single POST /v1/interactions)
#           bench/post-consent.lua     (POST /v1/subjects/{id}/consents)
# Needs wrk (Debian package `wrk`). Builds the release binary (or runs $CUSTODIA_BIN).
# Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
script=${1:?usage: bench/load.sh SCRIPT [DATABASE_URL]}
# CUSTODIA_BIN runs another build (e.g. an older commit's, for an A/B comparison).
if [ -n "${CUSTODIA_BIN:-}" ]; then bin=$CUSTODIA_BIN; else cargo build --release --quiet; bin=target/release/custodia; fi
work=$(mktemp -d)
port=${BENCH_PORT:-18080}
export CUSTODIA_DATA_DIR="$work/data" CUSTODIA_POLICY_DIR="$PWD/policies" CUSTODIA_BIND="127.0.0.1:$port"
# Capacity from one key is what is measured: no per-key rate limit (CUSTODIA_RATE_LIMIT=0).
export CUSTODIA_RATE_LIMIT="${CUSTODIA_RATE_LIMIT:-0}"
if [ -n "${2:-}" ]; then export CUSTODIA_DATABASE_URL="$2"; fi
"$bin" migrate
key=$("$bin" keys create --role collector --name bench 2>/dev/null)
"$bin" serve 2>"$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
TOKEN=$(curl -sf "http://127.0.0.1:$port/v1/auth/token" -H 'content-type: application/json' \
  -d "{\"api_key\":\"$key\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
export TOKEN
# Warm up (creates most subjects), then measure.
RUN=warmup wrk -t2 -c32 -d5s -s "$script" "http://127.0.0.1:$port" >/dev/null
# A fresh PostgreSQL database has no planner statistics yet; autovacuum would gather them within
# a minute or so. Gather them now, so that the measurement is of a database in steady state.
if [[ "${CUSTODIA_DATABASE_URL:-}" == postgres* ]]; then psql -q "${CUSTODIA_DATABASE_URL}" -c ANALYZE; fi
echo "== saturation: 32 connections, each sending as fast as answers come back"
RUN=measured wrk -t2 -c32 -d20s --latency -s "$script" "http://127.0.0.1:$port"
echo "== held rate: 32 connections pausing ${DELAY_MS:-8} ms between requests"
RUN=paced DELAY_MS=${DELAY_MS:-8} wrk -t2 -c32 -d20s --latency -s "$script" "http://127.0.0.1:$port"
echo "== responses over all runs, by route and status"
curl -s "http://127.0.0.1:$port/metrics" | grep '^custodia_http_requests_total' | grep -v 'auth/token\|readyz' || true
echo "server peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2/1024 " MiB"}')"
