-- wrk script shared by every wrk scenario of bench/run.py.
--
-- Configured through the environment (wrk passes no arguments to setup()):
--   BENCH_METHOD        request method (default GET)
--   BENCH_BODY_BYTES    send a JSON body of this many bytes (POST scenario)
--   BENCH_DELAY_MS      pause this long before each request on a connection
--                       (paced runs: latency below saturation)
--   BENCH_EXPECT_STATUS count responses whose status differs (authorize and
--                       consent scenarios: a 200 consent page instead of the
--                       302 to the IdP would otherwise look like a success)
-- Headers come from wrk's own -H options.
--
-- done() prints one line "BENCH_JSON {...}" that run.py parses: wrk's text
-- summary rounds and changes units, this does not.

local method = os.getenv("BENCH_METHOD") or "GET"
local body_bytes = tonumber(os.getenv("BENCH_BODY_BYTES") or "0")
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local expect_status = tonumber(os.getenv("BENCH_EXPECT_STATUS") or "0")

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   mismatched = 0
   wrk.method = method
   if body_bytes > 0 then
      local filler = string.rep("x", body_bytes - 11)
      wrk.body = '{"data":"' .. filler .. '"}'
      wrk.headers["Content-Type"] = "application/json"
   end
   req = wrk.format()
end

function request()
   return req
end

if delay_ms > 0 then
   function delay()
      return delay_ms
   end
end

if expect_status > 0 then
   function response(status, headers, body)
      if status ~= expect_status then
         mismatched = mismatched + 1
      end
   end
end

function done(summary, latency, requests)
   local mismatched_total = 0
   for _, thread in ipairs(threads) do
      mismatched_total = mismatched_total + (thread:get("mismatched") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
         .. '"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,'
         .. '"connect_errors":%d,"read_errors":%d,"write_errors":%d,'
         .. '"status_errors":%d,"timeouts":%d,"mismatched":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50.0), latency:percentile(99.0), latency.mean, latency.max,
      e.connect, e.read, e.write, e.status, e.timeout, mismatched_total))
end
