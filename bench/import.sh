#!/usr/bin/env bash
# `custodia import` of LINES interactions (default 1,000,000) from an NDJSON file in the native
# shape, half of them for people not seen before (each new person's first interaction), half
# for people seen earlier in the file; three encrypted fields, two purposes each.
# Usage: bench/import.sh [DATABASE_URL]   (default: a fresh SQLite file)
# Builds the release binary (or runs $CUSTODIA_BIN). Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${CUSTODIA_BIN:-}" ]; then bin=$CUSTODIA_BIN; else cargo build --release --quiet --bin custodia; bin=${CARGO_TARGET_DIR:-target}/release/custodia; fi
lines=${LINES:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CUSTODIA_DATA_DIR="$work/data" CUSTODIA_POLICY_DIR="$PWD/policies"
if [ -n "${1:-}" ]; then export CUSTODIA_DATABASE_URL="$1"; fi
python3 - "$lines" > "$work/interactions.ndjson" <<'PY'
import json, random, sys
lines = int(sys.argv[1])
random.seed(7)
out = sys.stdout
seen = 0
for i in range(lines):
    if i % 2 == 0:
        person = seen
        seen += 1
    else:
        person = random.randrange(seen)
    out.write(json.dumps({
        "id": f"evt-{i}", "subject_id": f"import-person-{person}", "type": "purchase",
        "channel": "web", "occurred_at": f"2026-{1 + i % 11:02d}-{1 + i % 28:02d}T10:00:00Z",
        "purposes": ["support", "legal_compliance"],
        "data": {"order_id": f"ORD-{i:09d}", "message": f"Order {i}: two items",
                 "page_url": "/checkout/confirm"}}) + "\n")
PY
ls -l "$work/interactions.ndjson" | awk '{printf "file: %.0f MB\n", $5/1e6}'
"$bin" migrate 2>/dev/null
/usr/bin/time -f "wall %e s, peak RSS %M KiB, CPU %P" \
  "$bin" import "$work/interactions.ndjson" --role collector 2>"$work/import.err" >"$work/summary.json" \
  || { tail -5 "$work/import.err"; exit 1; }
tail -1 "$work/import.err"
python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(\"stored\", s[\"interactions_stored\"], \"duplicates\", s[\"interactions_duplicate\"], \"invalid\", s[\"invalid\"], round(s[\"lines_per_second\"]), \"lines/s\")" "$work/summary.json"
