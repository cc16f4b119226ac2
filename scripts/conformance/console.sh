#!/usr/bin/env bash
# The console in a real browser: the distribution's headless Chromium, driven by
# Playwright for Python (from PyPI, in a virtual environment of its own, pointed at
# /usr/bin/chromium — Playwright's own browser download is never used). It starts a
# Gatehouse on a free port with a temporary data directory, walks the console
# (scripts/conformance/console_browser.py) and saves screenshots in docs/.
#
#   scripts/conformance/console.sh            # uses target/debug/gatehouse (builds it)
#   GATEHOUSE_BIN=target/release/gatehouse scripts/conformance/console.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${CONSOLE_VENV:-target/console-venv}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
SHOTS=${CONSOLE_SCREENSHOTS:-docs}

if [ ! -x "$CHROMIUM" ]; then
  echo "SKIPPED console browser tests: no Chromium at $CHROMIUM (apt-get install -y chromium)"
  exit 0
fi
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import playwright' 2>/dev/null; then
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$VENV"
    else
      echo "python3 -m venv is not available (apt-get install python3-venv)" >&2; exit 2
    fi
  fi
  # The driver only: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD, and `playwright install` is never run.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$VENV/bin/pip" install -q --disable-pip-version-check \
    playwright==1.49.1
fi

bin=${GATEHOUSE_BIN:-target/debug/gatehouse}
[ -n "${GATEHOUSE_BIN:-}" ] || cargo build --quiet --bin gatehouse

tmp=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# One failed webhook delivery makes a dead letter at once (the page re-drives it).
printf 'webhook-max-attempts = 1\n' > "$tmp/config.toml"
password=console-browser-admin-1
GATEHOUSE_ADMIN_PASSWORD=$password RUST_LOG=warn \
  "$bin" serve --data-dir "$tmp/data" --listen 127.0.0.1:0 --config "$tmp/config.toml" \
  > "$tmp/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 1 200); do
  grep -q listening "$tmp/server.out" 2>/dev/null && break
  sleep 0.05
done
base=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/server.out" | head -1)
[ -n "$base" ] || { echo "the server did not start:" >&2; cat "$tmp/server.out" >&2; exit 1; }

mkdir -p "$SHOTS"
CHROMIUM=$CHROMIUM "$VENV/bin/python" scripts/conformance/console_browser.py "$base" "$password" "$SHOTS"
