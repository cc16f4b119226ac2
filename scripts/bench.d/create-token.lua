-- wrk script: every request issues a new access token (a durable write: TokenIssued).
local auth = os.getenv("GH_AUTH")
function request()
  return wrk.format("POST", "/access/api/v1/tokens",
    {["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = auth},
    "scope=applied-permissions/user&expires_in=86400&description=bench")
end
