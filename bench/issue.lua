-- wrk script: POST a certificate request, count any answer without a certificate as an error.
-- Env: TOKEN, BODY_FILE (JSON body), APP (application slug), WAIT (Prefer: wait seconds).
local body_file = assert(io.open(os.getenv("BODY_FILE"), "r"))
wrk.method = "POST"
wrk.path = "/api/v1/applications/" .. os.getenv("APP") .. "/certificate-requests"
wrk.body = body_file:read("*a")
body_file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Prefer"] = "wait=" .. (os.getenv("WAIT") or "30")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
end

function response(status, headers, body)
  if status ~= 201 or not string.find(body, "BEGIN CERTIFICATE", 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local bad_total = 0
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
  end
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "bad": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, bad_total,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
