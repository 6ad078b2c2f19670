-- wrk script for bench/gateway.sh: one request per call against the silo
-- gateway, a random row by primary key, as the service whose token it
-- sends. Settings come from the environment (each wrk thread has its own
-- Lua state, so they are read per thread):
--   GW_MODE      read (POST /v1/query) or write (POST /v1/write, one update)
--   GW_TOKEN     the service's gateway token
--   GW_DATABASE  the service's database, GW_TABLE one of its tables
--   GW_ROWS      ids 1..GW_ROWS exist in the table
local mode = os.getenv("GW_MODE") or "read"
local token = os.getenv("GW_TOKEN")
local database = os.getenv("GW_DATABASE")
local tbl = os.getenv("GW_TABLE") or "characters"
local rows = tonumber(os.getenv("GW_ROWS") or "10000")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() + (seed or 0) * 7919)
end

function request()
  local id = math.random(1, rows)
  if mode == "write" then
    local body = string.format(
      '{"database":"%s","transaction":{"operations":[{"type":"update","table":"%s",' ..
      '"data":{"level":%d},"where":{"field":"id","operator":"=","value":%d}}]}}',
      database, tbl, math.random(1, 20), id)
    return wrk.format(nil, "/v1/write", nil, body)
  end
  local body = string.format(
    '{"database":"%s","query":{"type":"select","table":"%s",' ..
    '"where":{"field":"id","operator":"=","value":%d}}}',
    database, tbl, id)
  return wrk.format(nil, "/v1/query", nil, body)
end

-- One line bench/gateway.sh reads: requests per second, p95 in ms, and
-- responses that were not 2xx (or socket errors).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT tps=%.1f p95_ms=%.3f p50_ms=%.3f errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(95) / 1000,
    latency:percentile(50) / 1000, e.status + e.connect + e.read + e.write + e.timeout))
end
