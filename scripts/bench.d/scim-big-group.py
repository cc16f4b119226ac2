# One-member SCIM PATCHes and member-less reads on a group of N members.
import os, sys, time, statistics, concurrent.futures
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scimserver import Server
binary, n = sys.argv[1], int(sys.argv[2])
server = Server(binary, "scimbig-", 18000)
B, req = server.base, server.req
S = "/access/api/v1/scim/v2"
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    list(ex.map(lambda i: req("POST", S + "/Users", {"userName": f"u{i:06}"}), range(n + 1)))
c, b, _ = req("POST", S + "/Groups", {"displayName": "big"}); assert c == 201, (c, b[:300])
for a in range(0, n, 2000):
    ops = [{"op": "add", "path": "members", "value": [{"value": f"u{i:06}"} for i in range(a, min(n, a + 2000))]}]
    c, body, _ = req("PATCH", S + "/Groups/big?excludedAttributes=members", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
    assert c == 200, body[:300]
def med(f, k=9):
    ts = []
    for i in range(k):
        ts.append(f(i))
    return statistics.median(ts) * 1000
last = f"u{n:06}"
PO = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
def patch(i, q=""):
    op = {"op": "add", "path": "members", "value": [{"value": last}]} if i % 2 == 0 else {"op": "remove", "path": f'members[value eq "{last}"]'}
    c, b, t = req("PATCH", S + "/Groups/big" + q, {"schemas": [PO], "Operations": [op]}); assert c == 200, b[:200]; return t
print(f"members={n}")
print(f"PATCH one member (full answer):         {med(patch):8.1f} ms")
print(f"PATCH one member excludedAttributes:    {med(lambda i: patch(i, '?excludedAttributes=members')):8.1f} ms")
print(f"GET group excludedAttributes=members:   {med(lambda i: req('GET', S + '/Groups/big?excludedAttributes=members')[2]):8.1f} ms")
print(f"GET group (whole):                       {med(lambda i: req('GET', S + '/Groups/big')[2]):8.1f} ms")
print(f"list filter displayName, no members:    {med(lambda i: req('GET', S + '/Groups?filter=displayName%20eq%20%22big%22&excludedAttributes=members')[2]):8.1f} ms")
server.stop()
