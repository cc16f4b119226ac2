"""load.py BASE KIND N CONNECTIONS RUN: N durable writes of KIND (`group`: POST a v2 group;
`scim`: a SCIM user create, the body of scim-create-user.lua; `token`: a token issued to
the user `reader`, the body of create-token.lua, made first when missing) over CONNECTIONS
keep-alive connections, each answered 201 (200 for a token; an assertion otherwise); or
`ping`, the baseline of the benchmark's ratios (GET /api/system/ping, answered 200). Used
by scripts/instructions, where a fixed count matters more than a rate."""
import base64
import http.client
import sys
import threading
import urllib.parse

base, kind, n, connections, run = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
url = urllib.parse.urlparse(base)
auth = "Basic " + base64.b64encode(b"admin:bench-admin-pw").decode()
failures = []
reader = "Basic " + base64.b64encode(b"reader:reader-password").decode()
if kind == "token":
    # Made only when missing: a create that answers 409 still hashes the password first.
    c = http.client.HTTPConnection(url.hostname, url.port)
    c.request("GET", "/access/api/v2/users/reader", headers={"Authorization": auth})
    r = c.getresponse()
    r.read()
    if r.status == 404:
        c.request("POST", "/access/api/v2/users", '{"username":"reader","password":"reader-password"}',
                  {"Content-Type": "application/json", "Authorization": auth})
        r = c.getresponse()
        r.read()
        assert r.status == 201, f"creating the reader: {r.status}"


def work(t):
    c = http.client.HTTPConnection(url.hostname, url.port)
    for i in range(n // connections):
        if kind == "group":
            body = '{"name":"bench-%s-%d-%d"}' % (run, t, i)
            c.request("POST", "/access/api/v2/groups", body,
                      {"Content-Type": "application/json", "Authorization": auth})
        elif kind == "ping":
            c.request("GET", "/api/system/ping")
        elif kind == "token":
            c.request("POST", "/access/api/v1/tokens",
                      "scope=applied-permissions/user&expires_in=86400&description=bench",
                      {"Content-Type": "application/x-www-form-urlencoded", "Authorization": reader})
        else:
            name = "scim-%s-%d-%d" % (run, t, i)
            body = ('{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s",'
                    '"name":{"givenName":"Bench","familyName":"User"},"emails":[{"value":"%s@example.com",'
                    '"type":"work","primary":true}],"active":true}' % (name, name))
            c.request("POST", "/access/api/v1/scim/v2/Users", body,
                      {"Content-Type": "application/scim+json", "Authorization": auth})
        r = c.getresponse()
        r.read()
        if r.status != (200 if kind in ("token", "ping") else 201):
            failures.append(r.status)
            return


threads = [threading.Thread(target=work, args=(t,)) for t in range(connections)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if failures:
    sys.exit(f"{kind}: answers other than 201: {failures[:5]}")
