-- wrk script: GET one OCSP request (path in OCSP_PATH); any non-200 or non-OCSP answer counts
-- as an error (an OCSP error status is still HTTP 200, so the body's first bytes are checked:
-- a successful OCSPResponse starts 30 82 .. 0a 01 00).
wrk.method = "GET"
wrk.path = os.getenv("OCSP_PATH")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, "\10\1\0", 1, true) then
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
