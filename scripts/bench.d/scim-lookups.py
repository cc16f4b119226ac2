# SCIM user lookups that scanned: externalId eq, id eq, emails[value eq], and pings during sortBy scans.
import os, sys, time, statistics, concurrent.futures, threading
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scimserver import Server
binary, n = sys.argv[1], int(sys.argv[2])
server = Server(binary, "scimlk-", 19000)
B, req = server.base, server.req
S = "/access/api/v1/scim/v2"
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    list(ex.map(lambda i: req("POST", S + "/Users", {"userName": f"u{i:06}", "externalId": f"X-{i}", "emails": [{"value": f"u{i}@ex.com", "primary": True}]}), range(n)))
def med(path, k=7):
    ts = []
    for _ in range(k):
        c, b, t = req("GET", S + path); assert c == 200, b[:200]; ts.append(t)
    return statistics.median(ts) * 1000
print(f"users={n}")
for label, q in [("externalId eq", '/Users?filter=externalId%20eq%20%22X-4242%22'),
                 ("id eq", '/Users?filter=id%20eq%20%22u004242%22'),
                 ("emails[value eq]", '/Users?filter=emails%5Bvalue%20eq%20%22u4242%40ex.com%22%5D'),
                 ("sortBy userName count=1", '/Users?sortBy=userName&count=1')]:
    print(f"{label:28s} {med(q):8.1f} ms")
# pings while 2 clients run sortBy scans
stop = False; pings = []
def pinger():
    while not stop:
        pings.append(req("GET", "/access/api/v1/system/ping")[2]); time.sleep(0.01)
th = threading.Thread(target=pinger); th.start()
with concurrent.futures.ThreadPoolExecutor(2) as ex:
    list(ex.map(lambda i: req("GET", S + "/Users?sortBy=userName&count=1"), range(10)))
stop = True; th.join()
pings.sort()
print(f"ping during sortBy scans: p50 {pings[len(pings)//2]*1000:.1f} ms, max {pings[-1]*1000:.1f} ms ({len(pings)} pings)")
server.stop()
