-- wrk script for every kind of request the service answers in steady state, one kind per run
-- (OP) or a weighted mix (OP=mix). Run from the repository root by bench/load.sh, which makes
-- a key per role and passes the tokens: TOKEN (collector), TOKEN_SUPPORT, TOKEN_MARKETER,
-- TOKEN_COMPLIANCE. People are cust-0 … cust-(SUBJECTS-1), default 10,000.
dofile("bench/wrk-common.lua")

-- OP_DEFAULT: set by a script that loads this one for a single kind of request.
local op = os.getenv("OP") or OP_DEFAULT or "interaction"
local subjects = tonumber(os.getenv("SUBJECTS") or "10000")
local tokens = {
  collector = "Bearer " .. (os.getenv("TOKEN") or ""),
  support = "Bearer " .. (os.getenv("TOKEN_SUPPORT") or ""),
  marketer = "Bearer " .. (os.getenv("TOKEN_MARKETER") or ""),
  compliance = "Bearer " .. (os.getenv("TOKEN_COMPLIANCE") or ""),
  -- The tracking protocol's write key: HTTP Basic, base64 of "<API key>:" (bench/tracking.sh).
  writekey = "Basic " .. (os.getenv("WRITE_KEY_BASIC") or ""),
}
local countries = {"DE", "AT", "FR", "IT", "ES", "NL", "BE", "PL", "SE", "DK"}
local languages = {"de", "en", "fr", "it", "nl"}
local purposes = {"marketing", "marketing.email", "marketing.sms"}

-- The person of this request: the seeding op walks them in order (each thread takes every
-- second one), the others spread over all of them.
local function person(sequential)
  if sequential then
    return (counter * 2 + thread_id) % subjects
  end
  return (counter * 7919 + thread_id) % subjects
end

local function send(method, role, path, body)
  local headers = {["Authorization"] = tokens[role]}
  if body then
    headers["Content-Type"] = "application/json"
  end
  return wrk.format(method, path, headers, body)
end

local function interaction_for(id, subject)
  return string.format(
    '{"id":"%s","subject_id":"%s","type":"purchase","channel":"web",' ..
    '"occurred_at":"2026-11-01T10:00:00Z","purposes":["support"],' ..
    '"data":{"message":"Order %s: two items, delivery to the usual address please",' ..
    '"order_id":"ORD-%s","page_url":"/checkout/confirm"}}', id, subject, id, id)
end

local function interaction_json(id, n)
  return interaction_for(id, "cust-" .. n)
end

local function consent_json(id)
  local status = (counter % 2 == 0) and "withdrawn" or "granted"
  return string.format(
    '{"id":"%s","purpose":"%s","status":"%s","source":"web","method":"banner",' ..
    '"notice":{"id":"newsletter","version":"3"},' ..
    '"evidence":{"ip_address":"203.0.113.%d","user_agent":"Mozilla/5.0 (bench)"}}',
    id, purposes[(counter % 3) + 1], status, counter % 250)
end

-- A consent banner's answer as an IAB CMP sends it: a TC string (TCF v2.2, encoded by the IAB
-- Tech Lab's @iabtechlabtcf/core on 2026-12-07 with tests/sdk/vendor-list.json: purposes 1, 3
-- and 4 consented to vendor 755, or purpose 1 only) and a GPP string (US national section:
-- did not opt out), alternating grants and withdrawals of marketing.personalization like
-- consent_json. The strings grow stale after the policy's [tcf] max_age_days (390 days):
-- re-encode them with tests/sdk/consent-strings.mjs then.
local tcf_grant = "CQu26YAQu26YAAKABAENBkFgALAAAAAAAAYgF5wAQF5gAAAA.IAAA.YAAAAAAAAAAA"
local tcf_refuse = "CQu26YAQu26YAAKABAENBkFgAIAAAAAAAAYgF5wAQF5gAAAA.IAAA.YAAAAAAAAAAA"
local gpp_usnat = "DBABLA~CFAoAAAAAABA.QA"
local function consent_strings_json(id)
  local tcf = (counter % 2 == 0) and tcf_refuse or tcf_grant
  return string.format(
    '{"id":"%s","tcf_string":"%s","gpp_string":"%s","source":"web","method":"banner",' ..
    '"notice":{"id":"cookies","version":"1"},' ..
    '"evidence":{"ip_address":"203.0.113.%d","user_agent":"Mozilla/5.0 (bench)"}}',
    id, tcf, gpp_usnat, counter % 250)
end

-- This request's id: unique per run, thread and request.
local function request_id()
  return string.format("%s-t%d-%d", run, thread_id, counter)
end

local ops = {}

-- Creates or updates a person: an e-mail (blind-indexed), segmentable and encrypted traits.
ops.subject = function()
  local n = person(true)
  local body = string.format(
    '{"identifiers":{"email":"cust-%d@example.com"},' ..
    '"traits":{"country":"%s","language":"%s","full_name":"Person Number %d"}}',
    n, countries[n % 10 + 1], languages[n % 5 + 1], n)
  return send("PUT", "collector", "/v1/subjects/cust-" .. n, body)
end

ops.interaction = function()
  return send("POST", "collector", "/v1/interactions", interaction_json(request_id(), person()))
end

-- 100 interactions for 100 people in one request.
ops.batch = function()
  local items = {}
  for i = 1, 100 do
    local id = string.format("%s-t%d-%d-%d", run, thread_id, counter, i)
    items[i] = interaction_json(id, (counter * 100 + i * 7 + thread_id) % subjects)
  end
  return send("POST", "collector", "/v1/interactions/batch",
    '{"interactions":[' .. table.concat(items, ",") .. ']}')
end

-- First contact: every request is about someone never seen before (a consent banner, a
-- tracking endpoint). `_new`: each thread its own new people; `_shared`: both wrk threads send
-- the same new people at about the same time (retries, parallel tags).
local function new_person(shared)
  if shared then
    return string.format("new-%s-%d", run, counter)
  end
  return string.format("new-%s-t%d-%d", run, thread_id, counter)
end

local function consent_for_new(shared)
  return send("POST", "collector", "/v1/subjects/" .. new_person(shared) .. "/consents",
    consent_json(request_id()))
end

local function interaction_for_new(shared)
  return send("POST", "collector", "/v1/interactions",
    interaction_for(request_id(), new_person(shared)))
end

ops.consent_new = function() return consent_for_new(false) end
ops.interaction_new = function() return interaction_for_new(false) end
-- The same new people from both threads; the ids differ (two different events).
ops.consent_shared = function() return consent_for_new(true) end
ops.interaction_shared = function() return interaction_for_new(true) end

-- An ETL load: 1,000 interactions of 500 new people (two each), three encrypted fields.
ops.batch_new = function()
  local items = {}
  for i = 1, 1000 do
    local id = string.format("%s-t%d-%d-%d", run, thread_id, counter, i)
    local subject = string.format("load-%s-t%d-%d-%d", run, thread_id, counter, i % 500)
    items[i] = interaction_for(id, subject)
  end
  return send("POST", "collector", "/v1/interactions/batch",
    '{"interactions":[' .. table.concat(items, ",") .. ']}')
end

-- The tracking protocol as an SDK batches it: 100 track messages of 50 new people.
ops.tracking_batch = function()
  local messages = {}
  for i = 1, 100 do
    local id = string.format("%s-t%d-%d-%d", run, thread_id, counter, i)
    local user = string.format("track-%s-t%d-%d-%d", run, thread_id, counter, i % 50)
    messages[i] = string.format(
      '{"type":"track","messageId":"%s","userId":"%s","event":"Order Completed",' ..
      '"properties":{"order_id":"ORD-%s","message":"two items, the usual address",' ..
      '"revenue":12.5},"context":{"library":{"name":"analytics-node"}},' ..
      '"timestamp":"2026-11-01T10:00:00Z"}', id, user, id)
  end
  return send("POST", "writekey", "/v1/batch", '{"batch":[' .. table.concat(messages, ",") .. ']}')
end

ops.consent = function()
  return send("POST", "collector", "/v1/subjects/cust-" .. person() .. "/consents",
    consent_json(request_id()))
end

-- A support agent reads a person's interactions for `support` (decrypted, first page of 50).
ops.read_interactions = function()
  return send("GET", "support",
    "/v1/subjects/cust-" .. person() .. "/interactions?purpose=support&limit=50")
end

ops.consent_strings = function()
  return send("POST", "collector", "/v1/subjects/cust-" .. person() .. "/consents",
    consent_strings_json(request_id()))
end

ops.read_consents = function()
  return send("GET", "collector", "/v1/subjects/cust-" .. person() .. "/consents")
end

-- Compliance finds a person by e-mail.
ops.lookup = function()
  return send("POST", "compliance", "/v1/lookup/subjects",
    string.format('{"email":"cust-%d@example.com"}', person()))
end

-- Compliance exports everything held about a person (JSON, streamed).
ops.export = function()
  return send("GET", "compliance", "/v1/subjects/cust-" .. person() .. "/export")
end

-- A marketer counts a segment (the same question each time; the guard lets a repeated
-- question with the same answer through).
ops.preview = function()
  return send("POST", "marketer", "/v1/segments/preview",
    '{"purpose":"marketing","filter":{"all":[{"trait":"country","in":["DE","AT"]},' ..
    '{"interactions":{"type":"purchase","within_days":90}}]}}')
end

-- Compliance reads the newest page of the audit log.
ops.audit = function()
  return send("GET", "compliance", "/v1/audit?limit=50")
end

-- Steady-state traffic of a deployment: apps write most, people are read for support, and
-- compliance and marketing ask now and then. Weights out of 100.
local mix = {
  {48, "interaction"}, {2, "batch"}, {15, "consent"}, {5, "subject"},
  {15, "read_interactions"}, {8, "read_consents"}, {3, "lookup"}, {2, "export"},
  {1, "preview"}, {1, "audit"},
}
ops.mix = function()
  local roll = (counter * 37 + thread_id * 11) % 100
  for _, entry in ipairs(mix) do
    roll = roll - entry[1]
    if roll < 0 then
      return ops[entry[2]]()
    end
  end
  return ops.interaction()
end

local chosen = ops[op] or error("unknown OP " .. op)

function request()
  counter = counter + 1
  return chosen()
end
