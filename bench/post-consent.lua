-- wrk script: POST /v1/subjects/{id}/consents, alternating grants and withdrawals on
-- marketing purposes, with evidence, over 10,000 subjects. The token comes from TOKEN.
local counter = 0
local thread_id = 0
local threads = {}
local run = os.getenv("RUN") or tostring(os.time())
local purposes = {"marketing", "marketing.email", "marketing.sms"}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tonumber(tid) or 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end

local delay_ms = tonumber(os.getenv("DELAY_MS") or "")
if delay_ms then
  function delay()
    return delay_ms
  end
end

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

done = function(summary, latency, requests)
  io.write(string.format("requests: %d, errors: %d (status %d), duration: %.1f s\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout, summary.errors.status,
    summary.duration / 1e6))
  io.write(string.format("throughput: %.0f req/s\n", summary.requests / (summary.duration / 1e6)))
  for _, p in pairs({50, 90, 99, 99.9}) do
    io.write(string.format("p%s: %.2f ms\n", p, latency:percentile(p) / 1000))
  end
end
