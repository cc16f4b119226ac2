# A fresh Gatehouse for the SCIM measuring scripts: started on a loopback port with a
# temporary data directory, an admin request function, and a stop that removes it all.
import base64, json, os, shutil, subprocess, tempfile, time, urllib.error, urllib.request

PASSWORD = "Admin-pass-1234"


class Server:
    def __init__(self, binary, prefix, port_base):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        port = port_base + os.getpid() % 1000
        env = dict(os.environ, GATEHOUSE_ADMIN_PASSWORD=PASSWORD)
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", self.dir, "--listen", f"127.0.0.1:{port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}"
        self.auth = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        for _ in range(100):
            try:
                self.req("GET", "/access/api/v1/system/ping")
                break
            except Exception:
                time.sleep(0.1)

    def req(self, method, path, body=None):
        """(status, body bytes, seconds) of one admin request."""
        r = urllib.request.Request(
            self.base + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": self.auth, "Content-Type": "application/scim+json"})
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(r, timeout=120) as resp:
                data = resp.read(); code = resp.status
        except urllib.error.HTTPError as e:
            data = e.read(); code = e.code
        return code, data, time.perf_counter() - t

    def stop(self):
        self.proc.terminate(); self.proc.wait(); shutil.rmtree(self.dir)
