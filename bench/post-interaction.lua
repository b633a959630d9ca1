-- wrk script: POST /v1/interactions with a fresh id each time, spread over 10,000 subjects,
-- three encrypted fields (bench/api.lua, OP=interaction). Run from the repository root
-- (see bench/load.sh).
OP_DEFAULT = "interaction"
dofile("bench/api.lua")
