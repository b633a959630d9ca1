#!/usr/bin/env bash
# Single POST /v1/interactions at 32 concurrent connections, with wrk on loopback.
# Usage: bench/single-post.sh [DATABASE_URL]   (default: a fresh SQLite file)
# Needs wrk (Debian package `wrk`). Builds the release binary. Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
bin=target/release/custodia
work=$(mktemp -d)
port=${BENCH_PORT:-18080}
export CUSTODIA_DATA_DIR="$work/data" CUSTODIA_POLICY_DIR="$PWD/policies" CUSTODIA_BIND="127.0.0.1:$port"
if [ -n "${1:-}" ]; then export CUSTODIA_DATABASE_URL="$1"; fi
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
RUN=warmup wrk -t2 -c32 -d5s -s bench/post-interaction.lua "http://127.0.0.1:$port" >/dev/null
echo "== saturation: 32 connections, each sending as fast as answers come back"
RUN=measured wrk -t2 -c32 -d20s --latency -s bench/post-interaction.lua "http://127.0.0.1:$port"
echo "== held rate: 32 connections pausing ${DELAY_MS:-8} ms between requests"
RUN=paced DELAY_MS=${DELAY_MS:-8} wrk -t2 -c32 -d20s --latency -s bench/post-interaction.lua "http://127.0.0.1:$port"
echo "interactions created (201) over all runs: $(curl -s "http://127.0.0.1:$port/metrics" | grep 'route="/v1/interactions",status="201"' | grep requests_total | awk '{print $2}')"
echo "server peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2/1024 " MiB"}')"
