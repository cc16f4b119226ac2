-- wrk script: authorize questions over many repositories and paths, with one bearer token.
local auth = os.getenv("GH_AUTH")
local segs = {"org", "acme", "com", "lib", "app", "1.0", "app-1.0.jar"}
local n = 0
function request()
  n = n + 1
  local repo = "repo-" .. ((n * 7919) % 2000)
  local path = segs[(n % 7) + 1] .. "/" .. segs[((n * 3) % 7) + 1] .. "/" .. segs[((n * 5) % 7) + 1]
  return wrk.format("GET", "/access/api/v1/authorize?resource=" .. repo .. "/" .. path .. "&action=read",
    {["Authorization"] = auth}, nil)
end
