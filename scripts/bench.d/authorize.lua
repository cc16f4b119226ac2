-- wrk script: authorize questions over many repositories and paths, with one credential
-- (GH_AUTH). Answers are 200 (allowed) or 403 (denied), and wrk counts the 403s as
-- "Non-2xx", so it cannot tell them from a 401 (the credential stopped working) or a 5xx.
-- Each thread counts statuses itself; `done` prints one line that scripts/bench checks:
--   authorize answers: 200=<n> 403=<n> other=<n> socket-errors=<n> timeouts=<n> [(other statuses: ...)]
local auth = os.getenv("GH_AUTH")
local segs = {"org", "acme", "com", "lib", "app", "1.0", "app-1.0.jar"}
local n = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  -- Globals, so that `done` can read them from each thread (thread:get).
  allowed, denied, other = 0, 0, 0
  other_codes = ""
end

function request()
  n = n + 1
  local repo = "repo-" .. ((n * 7919) % 2000)
  local path = segs[(n % 7) + 1] .. "/" .. segs[((n * 3) % 7) + 1] .. "/" .. segs[((n * 5) % 7) + 1]
  return wrk.format("GET", "/access/api/v1/authorize?resource=" .. repo .. "/" .. path .. "&action=read",
    {["Authorization"] = auth}, nil)
end

function response(status, headers, body)
  if status == 200 then
    allowed = allowed + 1
  elseif status == 403 then
    denied = denied + 1
  else
    other = other + 1
    -- A few of the unexpected codes, for the message.
    if other <= 5 then
      other_codes = other_codes .. " " .. status
    end
  end
end

function done(summary, latency, requests)
  local a, d, o, codes = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    a = a + t:get("allowed")
    d = d + t:get("denied")
    o = o + t:get("other")
    codes = codes .. t:get("other_codes")
  end
  local e = summary.errors
  io.write(string.format("authorize answers: 200=%d 403=%d other=%d socket-errors=%d timeouts=%d%s\n",
    a, d, o, e.connect + e.read + e.write, e.timeout,
    codes ~= "" and (" (other statuses:" .. codes .. ")") or ""))
end
