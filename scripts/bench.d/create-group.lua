-- wrk script: every request creates a new group (a durable write).
-- Names are unique per wrk thread and request, so every request must answer 201.
-- The request's fixed part is built once (`init`); each request only appends its length
-- and body, which costs wrk less CPU than `wrk.format` each time (wrk runs on the same
-- cores as the server, so its CPU is taken from the server's).
local counter = 0
local prefix
local head
local run = os.getenv("GH_RUN") or "0"
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
end

function init(args)
  prefix = '{"name":"bench-' .. run .. "-" .. tostring(tid) .. "-"
  head = "POST /access/api/v2/groups HTTP/1.1\r\nHost: " .. wrk.headers["Host"] ..
    "\r\nContent-Type: application/json\r\nAuthorization: " .. os.getenv("GH_AUTH") ..
    "\r\nContent-Length: "
end

function request()
  counter = counter + 1
  local body = prefix .. counter .. '"}'
  return head .. #body .. "\r\n\r\n" .. body
end
