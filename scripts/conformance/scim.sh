#!/usr/bin/env bash
# SCIM conformance: the independent checker scim2-tester (python-scim2, via its CLI
# `scim2 test`) against a live Gatehouse. Every check it runs must succeed; none may fail
# or error. It installs the checker into a virtual environment of its own.
#
#   scripts/conformance/scim.sh            # uses target/debug/gatehouse (builds it)
#   GATEHOUSE_BIN=target/release/gatehouse scripts/conformance/scim.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
# The bar: the reference server scim2-server passes 135 checks with these versions.
MIN_SUCCESS=${SCIM_MIN_SUCCESS:-135}
VENV=${SCIM_VENV:-target/scim-venv}

if [ ! -x "$VENV/bin/scim2" ]; then
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$VENV"
    else
      echo "python3 -m venv is not available (apt-get install python3-venv)" >&2; exit 2
    fi
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    scim2-tester==0.5.2 scim2-cli==0.6.0 scim2-client==0.13.2 scim2-models==0.12.3
fi

bin=${GATEHOUSE_BIN:-target/debug/gatehouse}
[ -n "${GATEHOUSE_BIN:-}" ] || cargo build --quiet --bin gatehouse

tmp=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

password=scim-conformance-admin
GATEHOUSE_ADMIN_PASSWORD=$password RUST_LOG=warn \
  "$bin" serve --data-dir "$tmp/data" --listen 127.0.0.1:0 > "$tmp/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 1 200); do
  grep -q listening "$tmp/server.out" 2>/dev/null && break
  sleep 0.05
done
base=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/server.out" | head -1)
[ -n "$base" ] || { echo "the server did not start:" >&2; cat "$tmp/server.out" >&2; exit 1; }

auth="Authorization: Basic $(printf 'admin:%s' "$password" | base64 -w0)"
set +e
"$VENV/bin/scim2" --url "$base/access/api/v1/scim/v2" -h "$auth" test > "$tmp/report.txt" 2>&1
status=$?
set -e

success=$(grep -c '^SUCCESS' "$tmp/report.txt" || true)
errors=$(grep -cE '^(ERROR|CRITICAL|FAILED)' "$tmp/report.txt" || true)
skipped=$(grep -c '^SKIPPED' "$tmp/report.txt" || true)
echo "scim2-tester against Gatehouse: $success succeeded, $errors failed or errored, $skipped skipped (bar: at least $MIN_SUCCESS, no failures)"
if [ "$errors" -gt 0 ] || [ "$success" -lt "$MIN_SUCCESS" ] || [ "$status" -gt 1 ]; then
  grep -E -A4 '^(ERROR|CRITICAL|FAILED)' "$tmp/report.txt" >&2 || tail -40 "$tmp/report.txt" >&2
  exit 1
fi
