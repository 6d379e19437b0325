-- wrk script for the serving benchmark: POST one fixed JSON body, report a JSON line.
--
--   BENCH_BODY=work/bodies/aimass.load.json BENCH_TOKEN=... \
--     wrk -t1 -c64 -d15s --latency -s loadgen.lua http://127.0.0.1:8080/v2/models/lr/infer
--
-- BENCH_BODY: file with the request body (each server's own one-row format).
-- BENCH_TOKEN: optional bearer token (aimass runs with auth on).
-- At the end it prints one line "BENCH_JSON {...}" with requests, duration,
-- errors and the latency percentiles (microseconds) that bench.py reads.

local body_file = os.getenv("BENCH_BODY")
if body_file == nil then
  error("set BENCH_BODY to the file holding the request body")
end
local f = assert(io.open(body_file, "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, "p999": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
