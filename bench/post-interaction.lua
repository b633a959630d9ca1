-- wrk script: POST /v1/interactions with a fresh id each time, spread over 10,000 subjects,
-- three encrypted fields. The token comes from the TOKEN environment variable.
local counter = 0
local thread_id = 0
-- A different prefix per run, so that a second run never re-sends the first run's ids.
local run = os.getenv("RUN") or tostring(os.time())
local threads = {}

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

-- DELAY_MS, when set, makes each connection pause between requests, to hold a target rate
-- (32 connections with 8 ms pauses give roughly 3,000 requests per second).
local delay_ms = tonumber(os.getenv("DELAY_MS") or "")
if delay_ms then
  function delay()
    return delay_ms
  end
end

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

function response(status, headers, body)
  if status ~= 201 then
    unexpected = (unexpected or 0) + 1
  end
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
