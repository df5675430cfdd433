-- wrk script for bench/run_gateway.sh: every request is POST /predict with applicant.json (beside
-- this script: the first applicant of data/raw/credit-g.arff, all 20 features, as
-- tests/integration/test_gateway.py sends it) and the API key from CREDITO_API_KEY. The same
-- script runs against the gateway and the nginx ceiling. done() prints one line for the script to
-- read: requests/s, p50/p99/max latency in microseconds, and wrk's error counts (status: answers
-- other than 2xx and 3xx).

local key = os.getenv("CREDITO_API_KEY")
if key == nil or key == "" then
  io.stderr:write("predict.lua: set CREDITO_API_KEY\n")
  os.exit(2)
end

wrk.method = "POST"
wrk.path = "/predict"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = key
-- The body file sits beside this script, wherever wrk was started from.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local f = assert(io.open(dir .. "applicant.json", "rb"))
wrk.body = f:read("*a")
f:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("result requests=%d seconds=%.2f rps=%.0f p50_us=%d p99_us=%d " ..
                         "max_us=%d errors_connect=%d errors_read=%d errors_write=%d " ..
                         "errors_status=%d errors_timeout=%d\n",
                         summary.requests, summary.duration / 1e6,
                         summary.requests / (summary.duration / 1e6),
                         latency:percentile(50), latency:percentile(99), latency.max,
                         e.connect, e.read, e.write, e.status, e.timeout))
end
