-- wrk script for bench/tracing_overhead.py: POST one canned body with fixed headers, check
-- every response, and print one machine-readable result line at the end.
--
-- Environment (written by the benchmark):
--   WRK_BODY_FILE     the request body, sent as is
--   WRK_HEADERS_FILE  request headers, one "Name: value" a line (wrk adds Host and
--                     Content-Length)
--   WRK_EXPECT_EVENTS 0 for a JSON answer; N for an SSE stream, which must hold exactly N
--                     "data: " events, the last one "data: [DONE]"
--
-- Counted per thread and summed in done(): `sent`, requests written (what the proxy was
-- sent, including those still in flight when wrk stops and closes its connections);
-- `non2xx`, answers with a status
-- outside 200-299 (wrk's own "Non-2xx or 3xx responses" lets 3xx pass); `bad`, 2xx answers
-- whose body is wrong. The result line is "WRK_RESULT {json}", with the latency histogram
-- as [microseconds, count] pairs so that rounds can be merged exactly.

local function slurp(path)
  local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
  local data = f:read("*a")
  f:close()
  return data
end

wrk.method = "POST"
wrk.body = slurp(os.getenv("WRK_BODY_FILE"))
for line in slurp(os.getenv("WRK_HEADERS_FILE")):gmatch("[^\r\n]+") do
  local name, value = line:match("^([^:]+):%s*(.-)%s*$")
  if name then
    wrk.headers[name] = value
  end
end
local expect_events = tonumber(os.getenv("WRK_EXPECT_EVENTS") or "0") or 0

-- thread-local counters (each thread has its own Lua state)
sent, non2xx, bad, first_bad = 0, 0, 0, ""

local prepared
function init(args)
  prepared = wrk.format() -- after wrk.init has set Host
end

function request()
  sent = sent + 1
  return prepared
end

local function note(status, body)
  if first_bad == "" then
    local snippet = (body or ""):sub(1, 160):gsub("[^%w%s%.,:;_%-%+/=%(%)%[%]{}]", "?")
    first_bad = "HTTP " .. status .. ": " .. snippet:gsub("%s+", " ")
  end
end

local function stream_ok(body)
  local events, at, last = 0, 1, nil
  while true do
    local s = body:find("data: ", at, true)
    if not s then
      break
    end
    if s == 1 or body:sub(s - 1, s - 1) == "\n" then
      events = events + 1
      last = s
    end
    at = s + 6
  end
  return events == expect_events and last ~= nil and body:find("^data: %[DONE%]%s*$", last) ~= nil
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    note(status, body)
  elseif expect_events > 0 then
    if not stream_ok(body) then
      bad = bad + 1
      note(status, body)
    end
  elseif not body:find("chat.completion", 1, true) then
    bad = bad + 1
    note(status, body)
  end
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  if #threads == 1 then
    -- wrk 4.x calls request() once on the first thread's state, right after this, to check
    -- the request it builds: that call sends nothing, so it must not count.
    thread:set("sent", -1)
  end
end

function done(summary, latency, requests)
  local total = { sent = 0, non2xx = 0, bad = 0 }
  local first = ""
  for _, thread in ipairs(threads) do
    for name, _ in pairs(total) do
      total[name] = total[name] + thread:get(name)
    end
    if first == "" then
      first = thread:get("first_bad")
    end
  end
  local pairs_ = {}
  for i = 1, #latency do
    local value, count = latency(i)
    pairs_[#pairs_ + 1] = string.format("[%d,%d]", value, count)
  end
  local e = summary.errors
  io.write(
    string.format(
      'WRK_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"sent":%d,"non2xx":%d,"bad":%d,'
        .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
        .. '"first_bad":"%s","latency_us":[%s]}\n',
      summary.requests,
      summary.duration,
      summary.bytes,
      total.sent,
      total.non2xx,
      total.bad,
      e.connect,
      e.read,
      e.write,
      e.status,
      e.timeout,
      first,
      table.concat(pairs_, ",")
    )
  )
end
