-- wrk script: every request creates a new user over SCIM (no password: a provisioned
-- user), a durable write. Names are unique per wrk thread and request: every answer 201.
-- The request's fixed part is built once (`init`), as in create-group.lua.
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
  prefix = "scim-" .. run .. "-" .. tostring(tid) .. "-"
  head = "POST /access/api/v1/scim/v2/Users HTTP/1.1\r\nHost: " .. wrk.headers["Host"] ..
    "\r\nContent-Type: application/scim+json\r\nAuthorization: " .. os.getenv("GH_AUTH") ..
    "\r\nContent-Length: "
end

function request()
  counter = counter + 1
  local name = prefix .. counter
  local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name ..
    '","name":{"givenName":"Bench","familyName":"User"},"emails":[{"value":"' .. name ..
    '@example.com","type":"work","primary":true}],"active":true}'
  return head .. #body .. "\r\n\r\n" .. body
end
