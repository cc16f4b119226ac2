#!/usr/bin/env bash
# OpenAPI conformance: a bounded property-based run of schemas/openapi.yaml by Schemathesis
# (from PyPI, in a virtual environment of its own) against a live Gatehouse, signed in as
# the admin with HTTP Basic. Every operation gets generated requests (valid and invalid);
# no answer may be a 5xx, carry a status code or content type the description does not
# list for that operation, or have a body that breaks the description's schema.
# The seed is fixed and generation is deterministic, so a run repeats the same requests
# (about 9,200: 1.5 to 3.5 minutes on two cores, depending on what else runs). Fixtures made first through the API
# (openapi_fixtures.py) and hooks (openapi_hooks.py) let requests reach existing things,
# keep the admin's own account out of harm's way and point every URL the server is given
# at a closed loopback port. Ends with one line `openapi: N passed, N failed (...)`,
# counting operations, and exits non-zero on any failure or error, or when the run lost
# its credentials.
#
#   scripts/conformance/openapi.sh            # uses target/debug/gatehouse (builds it)
#   GATEHOUSE_BIN=target/release/gatehouse scripts/conformance/openapi.sh
#   OPENAPI_EXAMPLES=50 scripts/conformance/openapi.sh   # more cases per operation
#   OPENAPI_ARGS='--include-tag users' scripts/conformance/openapi.sh   # extra st run flags
#   OPENAPI_CHECKS=all scripts/conformance/openapi.sh   # every check schemathesis has
# The reports (JSON summary, NDJSON of every exchange) are left in target/openapi-report/.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${OPENAPI_VENV:-target/openapi-venv}
REPORT_DIR=${OPENAPI_REPORT_DIR:-target/openapi-report}
EXAMPLES=${OPENAPI_EXAMPLES:-5}
SEED=${OPENAPI_SEED:-20261202}
# What must hold for every answer. (negative_data_rejection is left out: many request
# schemas here are loose `{type: object}`, so "invalid" data is rarely generated, and what
# the server refuses beyond the description is not a conformance failure.)
CHECKS=${OPENAPI_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}
# A safety cap only (seconds): the run is bounded by the number of examples per operation,
# not by time. (Schemathesis' own --max-time is not used: with it, fuzzing repeats until
# the budget is spent, which makes every run as long as the budget and not repeatable.)
TIME_CAP=${OPENAPI_TIME_CAP:-900}
# Pinned: schemathesis and what decides which requests it generates and how answers are
# validated.
PACKAGES="schemathesis==4.32.5 hypothesis==6.170.17 jsonschema_rs==0.60.3 requests==2.34.2 urllib3==2.8.0 PyYAML==6.0.4"
STAMP="$VENV/.openapi-packages"

if [ ! -x "$VENV/bin/schemathesis" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$PACKAGES" ]; then
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

# Schemathesis sends requests with missing and wrong credentials on purpose (about a
# thousand). Five in a row would lock the admin (lockout-threshold), and the sign-in
# limits would answer 429 to every password check from 127.0.0.1 once the first 20
# failures are spent; either way the rest of the run would not reach the API.
cat > "$tmp/config.toml" <<'EOF'
lockout-threshold = 4294967295
signin-address-burst = 0
signin-user-burst = 0
EOF
# Schemathesis keeps a cache of earlier runs' requests (in ./.schemathesis) and replays
# it: off, so every run sends the same requests and leaves nothing in the work tree.
printf '[cache]\nenabled = false\n' > "$tmp/schemathesis.toml"

password=${GATEHOUSE_ADMIN_PASSWORD:-openapi-conformance-Admin1}
GATEHOUSE_ADMIN_PASSWORD=$password RUST_LOG=${RUST_LOG:-warn} \
  "$bin" serve --data-dir "$tmp/data" --listen 127.0.0.1:0 --config "$tmp/config.toml" \
  > "$tmp/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 1 200); do
  grep -q listening "$tmp/server.out" 2>/dev/null && break
  sleep 0.05
done
base=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/server.out" | head -1)
[ -n "$base" ] || { echo "the server did not start:" >&2; cat "$tmp/server.out" >&2; exit 1; }

# The admin's SCIM id: requests naming it (or the user name) are sent for a stand-in name
# (scripts/conformance/openapi_hooks.py), so the run never disables its own credential.
admin_scim_id=$(GATEHOUSE_URL=$base GATEHOUSE_ADMIN_PASSWORD=$password "$VENV/bin/python" - <<'EOF'
import os, requests
r = requests.get(os.environ["GATEHOUSE_URL"] + "/access/api/v1/scim/v2/Users",
                 params={"filter": 'userName eq "admin"'},
                 auth=("admin", os.environ["GATEHOUSE_ADMIN_PASSWORD"]), timeout=30)
r.raise_for_status()
print(r.json()["Resources"][0]["id"])
EOF
)

# One of each kind of thing, so that generated requests also reach existing resources.
service_id=$(sed -n 's/.*listening on http:[^ ]* as \([^ ]*\).*/\1/p' "$tmp/server.out" | head -1)
fixtures=$(GATEHOUSE_URL=$base GATEHOUSE_ADMIN_PASSWORD=$password GATEHOUSE_SERVICE_ID=$service_id "$VENV/bin/python" scripts/conformance/openapi_fixtures.py)

rm -rf "$REPORT_DIR"
mkdir -p "$REPORT_DIR"
# Left out, each because it would end or invalidate the rest of the run:
#  - POST /access/api/v1/system/backup/import: replaces the server's state with a backup.
#  - POST /access/api/v2/users/expire_password_for_all_users and its Artifactory spelling
#    POST /artifactory/api/security/users/authorization/expirePasswordForAllUsers: expire
#    the caller's password too, after which the admin may only change it (403 elsewhere).
# Kept, though they look destructive: POST /cert/root/rotate and /cert/root/reset (only
# tokens are affected; the run signs in with Basic), POST /artifactory/api/signed/url/key (only signed
# URLs stop working), the full broadcasts (every federation target the run can register
# points at a closed loopback port, so they fail at once), GET /audit/events (its ndjson
# stream is finite), backup export (writes under the temporary data directory). Changes
# to the admin itself are kept away by openapi_hooks.py, which also keeps the user lock
# policy (PUT /artifactory/api/security/userLockPolicy: it replaces the lockout-threshold
# below) and anonymous access (PUT /access/api/v1/config/security/anonymous_access) off.
# Turning Basic sign-in off is kept: admins always may.
exclude=(
  --exclude-path /access/api/v1/system/backup/import
  --exclude-path /access/api/v2/users/expire_password_for_all_users
  --exclude-path /artifactory/api/security/users/authorization/expirePasswordForAllUsers
)
# One worker: with two, the operations' requests interleave differently from run to run,
# and so does the state each request meets (Schemathesis reuses values from answers).
set +e
# shellcheck disable=SC2086
HYPOTHESIS_STORAGE_DIRECTORY="$tmp/hypothesis" PYTHONDONTWRITEBYTECODE=1 \
OPENAPI_PROTECT="admin,$admin_scim_id" OPENAPI_FIXTURES=$fixtures PYTHONPATH=scripts/conformance SCHEMATHESIS_HOOKS=openapi_hooks \
  timeout -k 10 "$TIME_CAP" "$VENV/bin/schemathesis" --config-file "$tmp/schemathesis.toml" \
  run schemas/openapi.yaml --url "$base" \
  --auth "admin:$password" \
  --checks "$CHECKS" \
  "${exclude[@]}" \
  --max-examples "$EXAMPLES" --seed "$SEED" --generation-deterministic \
  --no-shrink \
  --workers 1 --request-timeout 30 \
  --no-color --output-truncate true \
  --report json,ndjson --report-dir "$REPORT_DIR" \
  --report-json-path "$REPORT_DIR/report.json" --report-ndjson-path "$REPORT_DIR/exchanges.ndjson" \
  ${OPENAPI_ARGS:-} > "$tmp/st.out" 2>&1
status=$?
set -e
cp "$tmp/server.out" "$REPORT_DIR/server.log" 2>/dev/null || true
cp "$tmp/st.out" "$REPORT_DIR/schemathesis.out" 2>/dev/null || true

# The run must not have locked itself out: the admin still signs in, enabled.
admin_check=$(GATEHOUSE_URL=$base GATEHOUSE_ADMIN_PASSWORD=$password "$VENV/bin/python" - 2>&1 <<'EOF' | tail -1
import os, requests
r = requests.get(os.environ["GATEHOUSE_URL"] + "/access/api/v2/users/admin",
                 auth=("admin", os.environ["GATEHOUSE_ADMIN_PASSWORD"]), timeout=30)
status = r.json().get("status") if r.status_code == 200 else None
print(r.status_code if status in (None, "enabled") else f"200 but status {status}")
EOF
)

# One line from the JSON report, printed last; non-zero exit on failures, errors, lost
# credentials, or a run that did not finish.
set +e
"$VENV/bin/python" - "$REPORT_DIR/report.json" "$status" "$admin_check" > "$tmp/summary.txt" <<'EOF2'
import json, sys
path, status, admin_check = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    r = json.load(open(path))
except Exception as e:
    print(f"openapi: 0 passed, 1 failed (no report: {e}; schemathesis exit {status})")
    sys.exit(1)
failed_ops = set()
for f in r.get("failures") or []:
    failed_ops.update(f.get("operations") or [])
for e in r.get("errors") or []:
    failed_ops.update(e.get("operations") or [e.get("label") or e.get("title") or "?"])
# Operations that take other credentials than a user's (a peer's signed token, a signed
# URL's signature, the console's session cookie): 401/403 to the admin is their right
# answer.
OTHER_CREDENTIALS = {
    "GET /ui/session",
    "POST /ui/sign-out",
    "POST /access/api/v1/service_trust/pairing/exchange",
    "POST /access/api/v1/system/federation/receive",
    "POST /access/api/v1/system/federation/challenge",
    "GET /artifactory/api/signed/url/verify",
}
lost_auth = [op for op in (r.get("warnings") or {}).get("missing_auth") or [] if op not in OTHER_CREDENTIALS]
ops = r.get("operations") or {}
tested = ops.get("tested", 0)
tc = r.get("test_cases") or {}
failed = len(failed_ops)
passed = max(tested - failed, 0)
problems = []
if status != 0:
    problems.append(f"schemathesis exit {status}")
if lost_auth:
    problems.append(f"{len(lost_auth)} operations answered only 401/403 ({', '.join(sorted(lost_auth)[:5])}):"
                    " the run lost its credentials?")
if admin_check.strip() != "200":
    problems.append(f"the admin no longer signs in at the end of the run ({admin_check.strip()})")
if r.get("stop_reason") != "completed":
    problems.append(f"stopped: {r.get('stop_reason')}")
if ops.get("errored"):
    problems.append(f"{ops['errored']} operations errored")
detail = (f"{tested} operations, {tc.get('generated', 0)} requests, seed {r.get('seed')},"
          f" {tc.get('unique_failures', 0)} unique failures, {r.get('running_time', 0):.0f} s")
print(f"openapi: {passed} passed, {failed} failed ({detail}{'; ' + '; '.join(problems) if problems else ''})")
sys.exit(1 if failed or problems else 0)
EOF2
verdict=$?
set -e
if [ "$verdict" -ne 0 ]; then
  if grep -q '= FAILURES =' "$tmp/st.out"; then
    sed -n '/= FAILURES =/,$p' "$tmp/st.out" | head -600 >&2
  else
    tail -60 "$tmp/st.out" >&2
  fi
fi
cat "$tmp/summary.txt"
exit "$verdict"
