-- wrk script for bench/sync_load.py: each request phones home as the next contact of a
-- file of "token cursor" lines (cursor "-" = none: the "new messages" path).
local lines = {}
local index = 0
local app_key = os.getenv("PH_APP_KEY")
local platform = os.getenv("PH_PLATFORM") or "gcm"

init = function(args)
  for line in io.lines(args[1]) do
    local token, cursor = line:match("^(%S+) (%S+)$")
    lines[#lines + 1] = { token = token, cursor = cursor }
  end
  index = math.random(#lines)
end

request = function()
  index = index % #lines + 1
  local entry = lines[index]
  local body
  if entry.cursor == "-" then
    body = '{"platform":"' .. platform .. '"}'
  else
    body = '{"platform":"' .. platform .. '","cursor":"' .. entry.cursor .. '"}'
  end
  return wrk.format("POST", "/v1/sync", {
    ["Content-Type"] = "application/json",
    ["X-App-Key"] = app_key,
    ["Authorization"] = "Bearer " .. entry.token,
  }, body)
end

done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'WRK {"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, "errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errors))
end
