-- wrk script: POST /v1/subjects/{id}/consents, alternating grants and withdrawals on
-- marketing purposes, with evidence, over 10,000 subjects (bench/api.lua, OP=consent). Run
-- from the repository root (see bench/load.sh).
OP_DEFAULT = "consent"
dofile("bench/api.lua")
