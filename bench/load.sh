#!/usr/bin/env bash
# Load on loopback with wrk: 2 threads, 32 connections.
# Usage: bench/load.sh SCRIPT [DATABASE_URL]   (default database: a fresh SQLite file)
#   SCRIPT: bench/post-interaction.lua (single POST /v1/interactions)
#           bench/post-consent.lua     (POST /v1/subjects/{id}/consents)
#           all                        every kind of request of bench/api.lua, one after the
#                                      other on one seeded database, then the mix; prints a
#                                      Markdown table (OPS, DURATION and SUBJECTS change it)
# Needs wrk (Debian package `wrk`). Builds the release binary (or runs $CUSTODIA_BIN).
# Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
script=${1:?usage: bench/load.sh SCRIPT|all [DATABASE_URL]}
# CUSTODIA_BIN runs another build (e.g. an older commit's, for an A/B comparison).
if [ -n "${CUSTODIA_BIN:-}" ]; then bin=$CUSTODIA_BIN; else cargo build --release --quiet; bin=target/release/custodia; fi
work=$(mktemp -d)
port=${BENCH_PORT:-18080}
url="http://127.0.0.1:$port"
export CUSTODIA_DATA_DIR="$work/data" CUSTODIA_POLICY_DIR="$PWD/policies" CUSTODIA_BIND="127.0.0.1:$port"
# Capacity from one key is what is measured: no per-key rate limit (CUSTODIA_RATE_LIMIT=0).
export CUSTODIA_RATE_LIMIT="${CUSTODIA_RATE_LIMIT:-0}"
if [ -n "${2:-}" ]; then export CUSTODIA_DATABASE_URL="$2"; fi
"$bin" migrate
keys=()
for role in collector support marketer compliance; do
  keys+=("$("$bin" keys create --role "$role" --name "bench-$role" 2>/dev/null)")
done
"$bin" serve 2>"$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.2; done
token() {
  curl -sf "$url/v1/auth/token" -H 'content-type: application/json' -d "{\"api_key\":\"$1\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
TOKEN=$(token "${keys[0]}") TOKEN_SUPPORT=$(token "${keys[1]}")
TOKEN_MARKETER=$(token "${keys[2]}") TOKEN_COMPLIANCE=$(token "${keys[3]}")
export TOKEN TOKEN_SUPPORT TOKEN_MARKETER TOKEN_COMPLIANCE
# A fresh PostgreSQL database has no planner statistics yet; autovacuum would gather them within
# a minute or so. Gather them after seeding, so that what is measured is a steady state.
analyze() {
  if [[ "${CUSTODIA_DATABASE_URL:-}" == postgres* ]]; then psql -q "${CUSTODIA_DATABASE_URL}" -c ANALYZE; fi
}
rss() { grep VmHWM "/proc/$server/status" | awk '{printf "%.0f MiB", $2/1024}'; }

if [ "$script" != all ]; then
  # Warm up (creates most subjects), then measure.
  RUN=warmup wrk -t2 -c32 -d5s -s "$script" "$url" >/dev/null
  analyze
  echo "== saturation: 32 connections, each sending as fast as answers come back"
  RUN=measured wrk -t2 -c32 -d20s --latency -s "$script" "$url"
  echo "== held rate: 32 connections pausing ${DELAY_MS:-8} ms between requests"
  RUN=paced DELAY_MS=${DELAY_MS:-8} wrk -t2 -c32 -d20s --latency -s "$script" "$url"
else
  # Seed: every person (e-mail, traits), their interactions and consent statements.
  OP=subject RUN=seed-s wrk -t2 -c32 -d"${SEED:-8}s" -s bench/api.lua "$url" >/dev/null
  OP=batch RUN=seed-b wrk -t2 -c32 -d"${SEED:-8}s" -s bench/api.lua "$url" >/dev/null
  OP=consent RUN=seed-c wrk -t2 -c32 -d"${SEED:-8}s" -s bench/api.lua "$url" >/dev/null
  analyze
  echo "| request | requests/s | p50 | p99 | answers not 2xx | server peak RSS so far |"
  echo "|---|---|---|---|---|---|"
  for op in ${OPS:-subject interaction batch consent read_interactions read_consents lookup export preview audit mix}; do
    out=$(OP=$op RUN="m-$op" wrk -t2 -c32 -d"${DURATION:-15s}" --latency -s bench/api.lua "$url")
    field() { awk -v k="$1:" '$1 == k {print $2}' <<<"$out"; }
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' <<<"$out")
    echo "| $op | $(field throughput) | $(field p50) ms | $(field p99) ms | $errors | $(rss) |"
  done
  echo
  echo "== answers by route and status over all runs"
fi
curl -s "$url/metrics" | grep '^custodia_http_requests_total' | grep -v 'auth/token\|readyz' || true
echo "server peak RSS: $(rss)"
