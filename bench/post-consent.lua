-- wrk script: POST /v1/subjects/{id}/consents, alternating grants and withdrawals on
-- marketing purposes, with evidence, over 10,000 subjects. Run from the repository root.
dofile("bench/wrk-common.lua")
local purposes = {"marketing", "marketing.email", "marketing.sms"}

function request()
  counter = counter + 1
  local subject = string.format("cust-%d", (counter * 7919 + thread_id) % 10000)
  local status = (counter % 2 == 0) and "withdrawn" or "granted"
  local body = string.format(
    '{"id":"%s-t%d-%d","purpose":"%s","status":"%s","source":"web","method":"banner",' ..
    '"notice":{"id":"privacy","version":"4"},' ..
    '"evidence":{"ip_address":"203.0.113.%d","user_agent":"Mozilla/5.0 (bench)"}}',
    run, thread_id, counter, purposes[(counter % 3) + 1], status, counter % 250)
  return wrk.format(nil, "/v1/subjects/" .. subject .. "/consents", nil, body)
end
