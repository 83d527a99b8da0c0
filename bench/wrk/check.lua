-- wrk script: GET one path, check every response, report as one JSON line.
-- Usage: wrk -t1 -cN -dS -s bench/wrk/check.lua URL -- EXPECTED_BODY
-- A response counts as a mismatch unless its status is 200 and its body equals EXPECTED_BODY
-- byte for byte (the lecture's `{"prediction":"2"}` plus a newline).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  expected = args[1] or '{"prediction":"2"}\n'
  responses = 0
  mismatches = 0
  bad_status = 0
  first_bad = ""
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 then
    bad_status = bad_status + 1
  end
  if status ~= 200 or body ~= expected then
    mismatches = mismatches + 1
    if first_bad == "" then
      first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 200)
    end
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local r, m, b, first = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    r = r + t:get("responses")
    m = m + t:get("mismatches")
    b = b + t:get("bad_status")
    if first == "" then first = t:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"responses":%d,"mismatches":%d,' ..
    '"bad_status":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,"first_bad":%s}\n',
    summary.requests, summary.duration, summary.bytes, r, m, b,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, json_string(first)))
end
