-- wrk script for benchmarks/load_test.py: POSTs request bodies read from a file (one JSON body per line, cycled,
-- each thread starting at its own offset) at a fixed overall rate, and prints the result as one JSON line.
--
--   wrk -t1 -c8 -d60s -s load_test.lua http://127.0.0.1:PORT/v1/score -- BODIES_FILE RATE THREADS [API_KEY]
--
-- wrk (4.x) has no rate option of its own: delay() paces each thread on a schedule of send slots, RATE/threads
-- per second, using the monotonic clock through LuaJIT's FFI (wrk's delay() takes whole milliseconds, so slots
-- are rounded down, and the schedule keeps the long-run rate exact). RATE 0 sends as fast as responses return.
-- A slot already past when its connection is free is sent at once and counted as "late": the latency of a late
-- request does not include the time it waited for a free connection, so a non-zero count means the server fell
-- behind the offered rate and the percentiles flatter it.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } cs_timespec;
  int clock_gettime(int clk_id, cs_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("cs_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

-- Per-thread state (each wrk thread runs this script in its own Lua state). `late` is global so that done()
-- can read it with thread:get.
local bodies, position, interval, next_slot = {}, 0, 0, nil
late = 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  local path, rate, thread_count, key = args[1], tonumber(args[2] or "0"), tonumber(args[3] or "1"), args[4]
  for line in io.lines(path) do
    if #line > 0 then table.insert(bodies, line) end
  end
  if #bodies == 0 then error("no request bodies in " .. tostring(path)) end
  if key and #key > 0 then headers["X-API-Key"] = key end
  -- Threads start at different offsets so that they do not send the same bodies in lockstep.
  position = math.floor((id - 1) * #bodies / thread_count)
  if rate > 0 then interval = 1000 * thread_count / rate end
  late = 0
end

function request()
  position = position % #bodies + 1
  return wrk.format("POST", nil, headers, bodies[position])
end

function delay()
  if interval == 0 then return 0 end
  local now = now_ms()
  if next_slot == nil then next_slot = now end
  next_slot = next_slot + interval
  local wait = next_slot - now
  if wait < 0 then
    late = late + 1
    return 0
  end
  return math.floor(wait)
end

function done(summary, latency, requests)
  local late_total = 0
  for _, thread in ipairs(threads) do late_total = late_total + (thread:get("late") or 0) end
  local e = summary.errors
  local function ms(us) return us / 1000 end
  io.write(string.format(
    'LOADTEST_RESULT {"requests": %d, "duration_s": %.3f, "rate": %.1f, "p50_ms": %.3f, "p90_ms": %.3f, ' ..
    '"p95_ms": %.3f, "p99_ms": %.3f, "p999_ms": %.3f, "max_ms": %.3f, "mean_ms": %.3f, "late": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(95)),
    ms(latency:percentile(99)), ms(latency:percentile(99.9)), ms(latency.max), ms(latency.mean), late_total,
    e.connect, e.read, e.write, e.status, e.timeout))
end
