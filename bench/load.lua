-- The one wrk script of the benchmarks (`make bench`, `make bench-compare`; the same for OpenBao
-- and Certforge): send one request, again and again, to the URL on wrk's command line. Any answer
-- that is not a 2xx whose body holds the expected bytes counts as an error; the first such answer
-- is printed for diagnosis.
-- Env: METHOD (default POST), BODY_FILE (optional: the JSON body), HEADERS (one "Name: value" a
--      line), EXPECT_HEX (optional: the bytes a good answer holds, in hex, e.g. 0a0100 for a
--      successful OCSP response; default: a certificate, "BEGIN CERTIFICATE"),
--      PACE_MS (optional): start one request every PACE_MS ms per thread, on a schedule shared by
--      the thread's connections (wrk cannot pace by itself; wrk2 is not in Debian). A request whose
--      turn came while every connection was busy starts as soon as one is free, and the schedule
--      restarts from there rather than bursting to catch up.
wrk.method = os.getenv("METHOD") or "POST"
if os.getenv("BODY_FILE") then
  local body_file = assert(io.open(os.getenv("BODY_FILE"), "r"))
  wrk.body = body_file:read("*a")
  body_file:close()
  wrk.headers["Content-Type"] = "application/json"
end
local expect = "BEGIN CERTIFICATE"
if os.getenv("EXPECT_HEX") then
  expect = string.gsub(os.getenv("EXPECT_HEX"), "%x%x", function(h)
    return string.char(tonumber(h, 16))
  end)
end
for name, value in string.gmatch(os.getenv("HEADERS") or "", "([^:\n]+):%s*([^\n]*)") do
  wrk.headers[name] = value
end

local pace = tonumber(os.getenv("PACE_MS") or "0")
if pace > 0 then
  local ffi = require("ffi")
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } cf_timespec;
    int clock_gettime(int clock_id, cf_timespec *tp);
  ]]
  local now = ffi.new("cf_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, now) -- CLOCK_MONOTONIC
    return tonumber(now.tv_sec) * 1000 + tonumber(now.tv_nsec) / 1e6
  end
  local next_at = nil
  -- wrk calls delay() before each request and waits that many ms; latency is measured from the
  -- moment the request is written, after the wait.
  function delay()
    local t = now_ms()
    if next_at == nil or next_at < t then
      next_at = t
    end
    local wait = next_at - t
    next_at = next_at + pace
    return math.floor(wait)
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  first_bad = ""
end

function response(status, headers, body)
  if status < 200 or status > 299 or not string.find(body, expect, 1, true) then
    bad = bad + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(body, 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local bad_total = 0
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
    local first = thread:get("first_bad")
    if first ~= "" then
      io.write("FIRST_BAD " .. string.gsub(first, "%s+", " ") .. "\n")
    end
  end
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "bad": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, bad_total,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
