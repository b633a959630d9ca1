-- wrk script: POST /v1/interactions with a fresh id each time, spread over 10,000 subjects,
-- three encrypted fields. Run from the repository root (see bench/load.sh).
dofile("bench/wrk-common.lua")

function request()
  counter = counter + 1
  local id = string.format("%s-t%d-%d", run, thread_id, counter)
  local subject = string.format("cust-%d", (counter * 7919 + thread_id) % 10000)
  local body = string.format(
    '{"id":"%s","subject_id":"%s","type":"purchase","channel":"web",' ..
    '"occurred_at":"2026-11-01T10:00:00Z","purposes":["support"],' ..
    '"data":{"message":"Order %s: two items, delivery to the usual address please",' ..
    '"order_id":"ORD-%s","page_url":"/checkout/confirm"}}', id, subject, id, id)
  return wrk.format(nil, "/v1/interactions", nil, body)
end
