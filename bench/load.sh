#!/usr/bin/env bash
# Load on loopback with wrk: 2 threads, 32 connections.
# Usage: bench/load.sh SCRIPT [DATABASE_URL]   (default database: a fresh SQLite file)
#   SCRIPT: bench/post-interaction.lua (single POST /v1/interactions)
#           bench/post-consent.lua     (POST /v1/subjects/{id}/consents)
#           all                        every kind of request of bench/api.lua, one after the
#                                      other on one seeded database, then the mix; prints a
#                                      Markdown table (OPS, DURATION and SUBJECTS change it)
#           first-contact                every request about someone new: consent statements
#                                      and interactions (each thread its own new people, then
#                                      both threads the same ones), and one client (then four)
#                                      posting batches of 1,000 interactions of 500 new people
#                                      back to back; prints a Markdown table with the answers
#                                      by status (409s and 5xx must be zero); OPS picks some
#                                      (consent_new interaction_new consent_shared
#                                      interaction_shared consent_paced interaction_paced
#                                      batch_new batch_new_4)
#           flood                        authenticated reads while 200 connections send bad API
#                                      keys to the token exchange without pause, from 50
#                                      loopback addresses (bench/flood.py); read latency and
#                                      the server's memory before, during and after
# POPULATION_FEED=off drops the population index's change-feed triggers and turns the index off
# (CUSTODIA_POPULATION_INDEX=off): the A/B baseline of what the index costs at ingest (the feed
# rows the code writes for new subjects and interactions remain; CUSTODIA_BIN of a build before
# the index is the whole baseline).
# SERVE_LOG keeps the server's log in that file. Needs wrk (Debian package `wrk`). Builds the release binary (or runs $CUSTODIA_BIN).
# Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
script=${1:?usage: bench/load.sh SCRIPT|all [DATABASE_URL]}
# CUSTODIA_BIN runs another build (e.g. an older commit's, for an A/B comparison).
if [ -n "${CUSTODIA_BIN:-}" ]; then bin=$CUSTODIA_BIN; else cargo build --release --quiet; bin=${CARGO_TARGET_DIR:-target}/release/custodia; fi
work=$(mktemp -d)
port=${BENCH_PORT:-18080}
url="http://127.0.0.1:$port"
export CUSTODIA_DATA_DIR="$work/data" CUSTODIA_POLICY_DIR="$PWD/policies" CUSTODIA_BIND="127.0.0.1:$port"
# Capacity from one key is what is measured: no per-key rate limit (CUSTODIA_RATE_LIMIT=0).
export CUSTODIA_RATE_LIMIT="${CUSTODIA_RATE_LIMIT:-0}"
if [ -n "${2:-}" ]; then export CUSTODIA_DATABASE_URL="$2"; fi
"$bin" migrate
if [ "${POPULATION_FEED:-on}" = off ]; then
  export CUSTODIA_POPULATION_INDEX=off
  drops=""
  for t in subjects:delete subject_members:insert,delete \
           subject_traits:insert,update,delete consent_current:insert,update,delete \
           objections:insert,update,delete restrictions:insert,update,delete \
           interaction_purposes:update,delete; do
    table=${t%%:*}
    for event in ${t#*:}; do
      event=${event//,/ }
      for e in $event; do
        if [[ "${CUSTODIA_DATABASE_URL:-}" == postgres* ]]; then
          drops+="DROP TRIGGER population_${table}_$e ON $table;"
        else
          drops+="DROP TRIGGER population_${table}_$e;"
        fi
      done
    done
  done
  if [[ "${CUSTODIA_DATABASE_URL:-}" == postgres* ]]; then psql -q "$CUSTODIA_DATABASE_URL" -c "$drops"
  else sqlite3 "$CUSTODIA_DATA_DIR/custodia.db" "$drops"; fi
fi
keys=()
for role in collector support marketer compliance; do
  keys+=("$("$bin" keys create --role "$role" --name "bench-$role" 2>/dev/null)")
done
"$bin" serve 2>"${SERVE_LOG:-$work/serve.log}" &
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

# Answers by status (all routes but token exchanges and readiness, from the server's metrics):
# prints the totals as JSON, and to stderr what changed since the totals given.
statuses_since() {
  curl -s "$url/metrics" | python3 -c '
import json, re, sys
before = json.loads(sys.argv[1] or "{}")
now = {}
for line in sys.stdin:
    m = re.match(r"custodia_http_requests_total\{method=\"(\w+)\",route=\"([^\"]+)\",status=\"(\d+)\"\} (\d+)", line)
    if m and m.group(2) not in ("/v1/auth/token", "/readyz", "/metrics"):
        now[m.group(3)] = now.get(m.group(3), 0) + int(m.group(4))
delta = {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}
print(json.dumps(now))
print(", ".join(f"{k}: {v}" for k, v in sorted(delta.items())) or "none", file=sys.stderr)
' "${1:-}"
}

measure() { # OP THREADS CONNECTIONS [PAUSE_MS] → one table row
  local op=$1 threads=$2 connections=$3 pause=${4:-} out counts per items=1 label=$1
  # wrk's summary line: "requests: N, errors: …, duration: D s".
  [ "$op" = batch_new ] && items=1000
  counts=$(statuses_since "" 2>/dev/null)
  [ -n "$pause" ] && label="$op, ${pause} ms pauses"
  out=$(OP=$op DELAY_MS=$pause RUN="m-$op-$threads-$connections-$SECONDS" wrk -t"$threads" -c"$connections" \
    -d"${DURATION:-10s}" --latency -s bench/api.lua "$url")
  field() { awk -v k="$1:" '$1 == k {print $2}' <<<"$out"; }
  per=$(statuses_since "$counts" 2>&1 >/dev/null)
  echo "| $label | $connections | $(field throughput) | $(awk -v n="$(field requests)" -v d="$(sed -n 's/.*duration: \([0-9.]*\) s.*/\1/p' <<<"$out")" -v i="$items" 'BEGIN {printf "%.0f", n * i / d}') | $(field p50) ms | $(field p99) ms | $per | $(rss) |"
}

if [ "$script" = first-contact ]; then
  # A short first run lets PostgreSQL gather statistics on tables that are no longer empty.
  OP=interaction_new RUN=warmup wrk -t2 -c32 -d3s -s bench/api.lua "$url" >/dev/null
  analyze
  echo "| workload | connections | requests/s | items/s | p50 | p99 | answers by status | server peak RSS so far |"
  echo "|---|---|---|---|---|---|---|---|"
  # OPS picks some of the workloads (e.g. OPS="batch_new batch_new_4"); all by default.
  for op in ${OPS:-consent_new interaction_new consent_shared interaction_shared consent_paced interaction_paced batch_new batch_new_4}; do
    case $op in
      # A held rate of about 3,000 requests per second: each connection pauses between requests.
      *_paced) measure "${op%_paced}_new" 2 32 "${DELAY_MS:-8}" ;;
      batch_new) measure batch_new 1 1 ;;
      batch_new_4) measure batch_new 2 4 ;;
      *) measure "$op" 2 32 ;;
    esac
  done
elif [ "$script" = flood ]; then
  python3 bench/flood.py "$url" "$server" "$TOKEN_COMPLIANCE"
elif [ "$script" != all ]; then
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
