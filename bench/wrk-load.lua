-- wrk script for workload c of bench/run.sh: wrk -t1 -c64 -d60s -s wrk-load.lua URL -- NAMES_FILE REQUESTS
-- Request i asks for line (i mod count) of NAMES_FILE, as `FileProxy.Bench load` does. After REQUESTS responses
-- the thread stops and raises SIGINT so that wrk's main thread ends the run at once instead of sleeping out -d;
-- done() prints one JSON line in the format of `FileProxy.Bench load`. Needs one thread (-t1): the count is per thread.
local ffi = require("ffi")
ffi.cdef [[
int getpid(void);
int kill(int pid, int sig);
]]

local names = {}
local total = 0
local sent = 0
local received = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      names[#names + 1] = "/" .. line
    end
  end
  total = tonumber(args[2])
end

function request()
  local path = names[(sent % #names) + 1]
  sent = sent + 1
  return wrk.format("GET", path)
end

function response(status, headers, body)
  received = received + 1
  if received == total then
    wrk.thread:stop()
    ffi.C.kill(ffi.C.getpid(), 2)
  end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%.6f,"rps":%.1f,"p50_ms":%.4f,"p99_ms":%.4f,"errors":%d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.status + e.timeout))
end
