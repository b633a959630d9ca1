-- Shared by the wrk scripts in this directory (loaded with dofile from the repository root):
-- thread ids, the bearer token, optional pauses (DELAY_MS), a run prefix (RUN) and the summary.
counter = 0
thread_id = 0
run = os.getenv("RUN") or tostring(os.time())
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

-- DELAY_MS, when set, makes each connection pause between requests, to hold a lower rate
-- (32 connections with 8 ms pauses give roughly 3,000 requests per second at 2 ms latency).
local delay_ms = tonumber(os.getenv("DELAY_MS") or "")
if delay_ms then
  function delay()
    return delay_ms
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
