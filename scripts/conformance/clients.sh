#!/usr/bin/env bash
# Client-library conformance: the real JFrog client libraries people script with —
# py-jfrog-client, pyartifactory, dohq-artifactory — and PyJWT, unmodified, against a live
# Gatehouse. scripts/conformance/clients.py drives every Access and security operation
# they offer for what Gatehouse keeps, checks what comes back and that the other APIs see
# the same state, prints `PASS name` / `FAIL name: reason` per check and ends with
# `N passed, N failed`. It installs the libraries into a virtual environment of its own.
#
#   scripts/conformance/clients.sh            # uses target/debug/gatehouse (builds it)
#   GATEHOUSE_BIN=target/release/gatehouse scripts/conformance/clients.sh
#   CLIENTS_ONLY='^jfc\.tokens' scripts/conformance/clients.sh   # a subset (regex on names)
#   CLIENTS_TRACE=/tmp/trace.jsonl ...        # every HTTP exchange, one JSON line each
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${CLIENTS_VENV:-target/clients-venv}
# Pinned: the versions scripts/conformance/CLIENTS.md (what each library sends and
# expects) was written against.
PACKAGES="py-jfrog-client==1.0.1 pyartifactory==2.11.2 dohq-artifactory==1.0.2 PyJWT==2.15.1 cryptography==50.0.2
  requests==2.34.2 urllib3==2.8.0 pydantic==2.14.4 email-validator==2.4.0 python-dateutil==4.0.0"
STAMP="$VENV/.clients-packages"

if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$PACKAGES" ]; then
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$VENV"
    else
      echo "python3 -m venv is not available (apt-get install python3-venv)" >&2; exit 2
    fi
  fi
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q --disable-pip-version-check $PACKAGES
  echo "$PACKAGES" > "$STAMP"
fi

bin=${GATEHOUSE_BIN:-target/debug/gatehouse}
[ -n "${GATEHOUSE_BIN:-}" ] || cargo build --quiet --bin gatehouse

tmp=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

password=clients-conformance-Admin1
GATEHOUSE_ADMIN_PASSWORD=$password RUST_LOG=warn \
  "$bin" serve --data-dir "$tmp/data" --listen 127.0.0.1:0 > "$tmp/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 1 200); do
  grep -q listening "$tmp/server.out" 2>/dev/null && break
  sleep 0.05
done
base=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/server.out" | head -1)
[ -n "$base" ] || { echo "the server did not start:" >&2; cat "$tmp/server.out" >&2; exit 1; }
service_id=$(sed -n 's/.*listening on http:[^ ]* as \([^ ]*\).*/\1/p' "$tmp/server.out" | head -1)

set +e
GATEHOUSE_URL=$base GATEHOUSE_ADMIN_PASSWORD=$password GATEHOUSE_SERVICE_ID=$service_id \
  PYTHONWARNINGS=ignore "$VENV/bin/python" scripts/conformance/clients.py
status=$?
set -e
# the server's own output, for a failing run (nothing is printed after the closing line)
cp "$tmp/server.out" target/clients-server.log 2>/dev/null || true
exit "$status"
