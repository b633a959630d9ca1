#!/usr/bin/env bash
# Schema-driven API fuzzing: schemathesis (PyPI) against a running `custodia serve`, from its own
# /openapi.json, once with a token of each sample role, bounded examples and a fixed seed.
# First /openapi.json is validated by openapi-spec-validator (PyPI). Checks: no 5xx, every status/content type/header/body as documented, schema-invalid input
# refused, undeclared methods answered 405 with Allow, auth required where declared.
# (positive_data_acceptance is left out: some rules span fields — "exactly one of subject_id or
# email", "at least one supported identity" — and OpenAPI cannot state them; those requests get
# a precise 4xx by design.)
# Usage: .ci/schemathesis.sh [postgres://…]   (default: a fresh SQLite database)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v schemathesis >/dev/null 2>&1; then
  python3 -m pip install --quiet "schemathesis==4.32.5"
fi
# An independent check that /openapi.json is a valid OpenAPI document (unique operation ids,
# resolvable references, schemas of the declared version), before anything is generated from it.
if ! python3 -c 'import openapi_spec_validator' 2>/dev/null; then
  python3 -m pip install --quiet "openapi-spec-validator==0.7.2"
fi
bin=${CARGO_TARGET_DIR:-target}/debug/custodia
[ -x "$bin" ] || cargo build --quiet
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export CUSTODIA_DATA_DIR="$work/data" CUSTODIA_POLICY_DIR="$PWD/policies" CUSTODIA_BIND="127.0.0.1:$port"
# The per-key rate limit would answer 429 to a fuzzer's burst; it is tested on its own.
export CUSTODIA_RATE_LIMIT=0
schema=""
if [ -n "${1:-}" ]; then
  schema="schemathesis_$$"
  psql -q "$1" -c "CREATE SCHEMA $schema"
  export CUSTODIA_DATABASE_URL="$1?options=-csearch_path%3D$schema"
fi
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  if [ -n "$schema" ]; then psql -q "$1" -c "DROP SCHEMA $schema CASCADE" || true; fi
  rm -rf "$work"
}
"$bin" serve 2>"$work/serve.log" &
server=$!
trap 'cleanup "${1:-}"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done

curl -sf "http://127.0.0.1:$port/openapi.json" -o "$work/openapi.json"
python3 -m openapi_spec_validator "$work/openapi.json"

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,unsupported_method,allow_header_conformance,missing_required_header,ignored_auth
for role in compliance collector marketer support admin; do
  key=$("$bin" keys create --role "$role" --name "schemathesis-$role" 2>/dev/null)
  token=$(curl -sf "http://127.0.0.1:$port/v1/auth/token" -H 'content-type: application/json' \
    -d "{\"api_key\": \"$key\"}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  echo "schemathesis as $role"
  (cd "$work" && schemathesis run "http://127.0.0.1:$port/openapi.json" \
    -H "Authorization: Bearer $token" --checks "$checks" \
    --max-examples 25 --seed 1 --no-color)
done
