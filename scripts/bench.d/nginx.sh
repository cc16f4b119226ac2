# shellcheck shell=bash
# Part `nginx` of scripts/bench (BENCH_ONLY=nginx): the edge. The same nginx serves a
# small file alone (the baseline) and behind `auth_request` to Gatehouse, as configured by
# scripts/nginx/nginx.conf.template: with its keep-alive pool of upstream connections, and
# without (every check a new TCP connection). A third figure shows why the template asks
# with HEAD: answered with a body, nginx closes the pooled connection after every check.
# Sourced by scripts/bench (start_server, stop_server, run_wrk, median, ratio, $tmp, $release,
# $RUNS, $SECONDS_PER_RUN).
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq nginx >/dev/null
  else
    echo "part nginx needs nginx (apt-get install nginx)" >&2; exit 2
  fi
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

start_server "$tmp/nginx-gatehouse"
curl -sf -o /dev/null -u admin:bench-admin-pw -H 'Content-Type: application/json' \
  -d '{"username":"rob","password":"rob-password-1","email":"rob@example.com"}' "$base/access/api/v2/users"
curl -sf -o /dev/null -u admin:bench-admin-pw -X PUT -H 'Content-Type: application/json' \
  -d '{"repo": {"repositories": ["libs-release"], "actions": {"users": {"rob": ["read"]}}}}' \
  "$base/artifactory/api/v2/security/permissions/readers"
edge_token=$(curl -sf -u admin:bench-admin-pw -d 'username=rob&expires_in=86400' "$base/access/api/v1/tokens" \
  | sed 's/.*"access_token":"\([^"]*\)".*/\1/')

# The file tree (readable by nginx's workers, which may run as nobody).
mkdir -p "$tmp/edge/root/libs-release/org/acme"
head -c 1024 /dev/urandom > "$tmp/edge/root/libs-release/org/acme/app.jar"
chmod 755 "$tmp" "$tmp/edge" "$tmp/edge/root" "$tmp/edge/root/libs-release" \
  "$tmp/edge/root/libs-release/org" "$tmp/edge/root/libs-release/org/acme"
chmod 644 "$tmp/edge/root/libs-release/org/acme/app.jar"

edge_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# edge_nginx NAME SED-SCRIPT -> starts nginx from the template (edited by SED-SCRIPT),
# with a `/plain/` location serving the same tree without auth_request; sets edge_url.
edge_pids=()
edge_nginx() {
  local dir="$tmp/edge/$1" port
  port=$(edge_port)
  mkdir -p "$dir"
  sed -e "s|{{PREFIX}}|$dir|g; s|{{LISTEN}}|127.0.0.1:$port|g; s|{{ROOT}}|$tmp/edge/root|g" \
      -e "s|{{GATEHOUSE_SCHEME}}|http|g; s|{{GATEHOUSE_NAME}}|localhost|g; s|{{GATEHOUSE_CA}}|/etc/ssl/certs/ca-certificates.crt|g; s|{{GATEHOUSE_ADDR}}|${base#http://}|g" \
      -e "s|access_log .*;|access_log off;|" \
      -e "s|^\(        location /artifactory/ {\)|        location /plain/ { alias $tmp/edge/root/; }\n\1|" \
      -e "$2" scripts/nginx/nginx.conf.template > "$dir/nginx.conf"
  "$nginx_bin" -p "$dir" -c "$dir/nginx.conf" > "$dir/stdout" 2>&1 &
  edge_pids+=($!)
  edge_url="http://127.0.0.1:$port"
  for _ in $(seq 1 200); do
    curl -sf -o /dev/null "$edge_url/plain/libs-release/org/acme/app.jar" && return
    sleep 0.05
  done
  echo "nginx ($1) did not start:" >&2; cat "$dir/stdout" "$dir/error.log" >&2; exit 1
}
edge_nginx pool ''; edge_pool=$edge_url
edge_nginx nopool '/^ *keepalive/d'; edge_nopool=$edge_url
edge_nginx get '/proxy_method HEAD;/d'; edge_get=$edge_url
file=/artifactory/libs-release/org/acme/app.jar
for u in "$edge_pool" "$edge_nopool" "$edge_get"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $edge_token" "$u$file")
  [ "$code" = 200 ] || { echo "nginx at $u answered $code, not 200" >&2; cat "$tmp"/edge/*/error.log >&2; exit 1; }
done

declare -a edge_static edge_ka edge_noka edge_getka edge_ping
for run in $(seq 1 "$RUNS"); do
  echo "nginx run $run/$RUNS..." >&2
  edge_static+=("$(run_wrk nginx-static "$edge_pool/plain/libs-release/org/acme/app.jar")")
  edge_ka+=("$(run_wrk nginx-pool -H "Authorization: Bearer $edge_token" "$edge_pool$file")")
  edge_noka+=("$(run_wrk nginx-nopool -H "Authorization: Bearer $edge_token" "$edge_nopool$file")")
  edge_getka+=("$(run_wrk nginx-get -H "Authorization: Bearer $edge_token" "$edge_get$file")")
  edge_ping+=("$(run_wrk ping "$base/api/system/ping")")
done
kill -TERM "${edge_pids[@]}"; wait "${edge_pids[@]}" 2>/dev/null || true
stop_server
edge_static_m=$(printf '%s\n' "${edge_static[@]}" | median)
edge_ka_m=$(printf '%s\n' "${edge_ka[@]}" | median)
edge_noka_m=$(printf '%s\n' "${edge_noka[@]}" | median)
edge_getka_m=$(printf '%s\n' "${edge_getka[@]}" | median)
edge_ping_m=$(printf '%s\n' "${edge_ping[@]}" | median)

cat <<TABLE

nginx $("$nginx_bin" -v 2>&1 | sed 's|.*/||') in front of a 1 KiB file (scripts/nginx/nginx.conf.template, its worker_processes), Bearer token, wrk -t2 -c$CONNECTIONS, ${SECONDS_PER_RUN}s per run, median of $RUNS runs
| figure | value | vs baseline | target |
|---|---|---|---|
| baseline: the same nginx serving the file alone | $(printf '%.0f' "$edge_static_m") req/s | 1.00 | — |
| nginx auth_request → Gatehouse, keep-alive pool + HEAD (as shipped) | $(printf '%.0f' "$edge_ka_m") req/s | $(ratio "$edge_ka_m" "$edge_static_m") | ≥ 0.35 |
| nginx auth_request → Gatehouse, no pool (a new connection per check) | $(printf '%.0f' "$edge_noka_m") req/s | $(ratio "$edge_noka_m" "$edge_static_m") | ≤ the pool |
| nginx auth_request → Gatehouse, pool but GET (a body: nginx closes the connection) | $(printf '%.0f' "$edge_getka_m") req/s | $(ratio "$edge_getka_m" "$edge_static_m") | report |
| Gatehouse ping in that run (for the core table's ratios) | $(printf '%.0f' "$edge_ping_m") req/s | — | — |

all runs: static ${edge_static[*]} | pool ${edge_ka[*]} | no pool ${edge_noka[*]} | pool+GET ${edge_getka[*]} | ping ${edge_ping[*]}
TABLE
