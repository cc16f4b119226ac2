# Several nodes on one PostgreSQL log (issue 14), sourced by scripts/bench:
#   BENCH_ONLY=postgres BENCH_RUNS=1 BENCH_SECONDS=5 scripts/bench
# Starts its own PostgreSQL (initdb/pg_ctl in a temporary directory, 127.0.0.1, default
# durability: fsync and synchronous_commit on, as sled's flush is), then measures in the
# same run: durable writes/s on one node with PostgreSQL vs one on sled; three nodes
# writing at once (sum, and vs one node); follow lag (commit on one node → applied on
# another) p50/p99. Prints SKIPPED when PostgreSQL is not installed.

pg_part() {
  local pgbin
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
    echo "SKIPPED postgres: PostgreSQL is not installed (apt-get install postgresql)"
    return 0
  fi
  # PostgreSQL refuses to run as root: its directory belongs to `postgres` then, and
  # lives outside $tmp (which only root may enter).
  local pgdir as=()
  pgdir=$(mktemp -d)
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$pgdir"
    as=(runuser -u postgres --)
  fi
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${as[@]}" "$pgbin/initdb" -D "$pgdir/data" -A trust -U gatehouse -E UTF8 > /dev/null
  "${as[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w -t 60 \
    -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1 -c max_connections=200" start > /dev/null
  pg_stop() {
    "${as[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate -w stop > /dev/null 2>&1 || true
    rm -rf "$pgdir"
  }
  local url="postgres://gatehouse@127.0.0.1:$port/postgres"
  printf 'store = "%s"\n' "$url" > "$tmp/pg.toml"
  # One master key for every node of the log (a second node without it does not start).
  head -c 48 /dev/urandom > "$tmp/master.key"
  chmod 600 "$tmp/master.key"
  printf 'master-key-file = "%s"\n' "$tmp/master.key" >> "$tmp/pg.toml"
  local admin
  admin="Basic $(printf 'admin:bench-admin-pw' | base64)"

  # Nodes of their own (start_server keeps one pid): node DIR -> sets node_pid, node_base.
  local node_pids=()
  pg_node() {
    GATEHOUSE_ADMIN_PASSWORD=bench-admin-pw RUST_LOG=warn \
      "$release/gatehouse" serve --data-dir "$1" --listen 127.0.0.1:0 --config "$tmp/pg.toml" > "$1.out" 2>&1 &
    node_pid=$!
    node_pids+=("$node_pid")
    for _ in $(seq 1 3000); do
      grep -q listening "$1.out" 2>/dev/null && break
      sleep 0.01
    done
    node_base=$(grep -o 'http://[0-9.:]*' "$1.out" | head -1)
    until curl -sf -o /dev/null "$node_base/api/v1/system/readiness"; do sleep 0.05; done
  }
  pg_nodes_stop() {
    local p
    for p in "${node_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    node_pids=()
  }

  local -a sled one ping three_sum three_ping conflicts
  local run
  for run in $(seq 1 "$RUNS"); do
    echo "postgres run $run/$RUNS: one node on sled, one on PostgreSQL..." >&2
    start_server "$tmp/pg-sled-$run"
    ping+=("$(run_wrk ping "$base/api/system/ping")")
    sled+=("$(GH_AUTH="$admin" GH_RUN="s$run" run_wrk pg-sled -s scripts/bench.d/create-group.lua "$base")")
    stop_server
    pg_node "$tmp/pg-one-$run"
    one+=("$(GH_AUTH="$admin" GH_RUN="p$run" run_wrk pg-one -s scripts/bench.d/create-group.lua "$node_base")")
    pg_nodes_stop

    echo "postgres run $run/$RUNS: three nodes writing at once..." >&2
    local bases=() n
    for n in 1 2 3; do
      pg_node "$tmp/pg-three-$run-$n"
      bases+=("$node_base")
    done
    three_ping+=("$(run_wrk ping "${bases[0]}/api/system/ping")")
    # A third of the clients on each node, all at once.
    local outs=()
    for n in 0 1 2; do
      GH_AUTH="$admin" GH_RUN="t$run-$n" CONNECTIONS=$(( CONNECTIONS / 3 > 2 ? CONNECTIONS / 3 : 2 )) \
        run_wrk "pg-three-$n" -s scripts/bench.d/create-group.lua "${bases[$n]}" > "$tmp/pg-three-$n.rate" &
      outs+=($!)
    done
    for n in "${outs[@]}"; do wait "$n"; done
    for n in 0 1 2; do
      [ -s "$tmp/pg-three-$n.rate" ] || { echo "postgres: node $n of three measured nothing" >&2; exit 1; }
    done
    three_sum+=("$(cat "$tmp"/pg-three-[012].rate | awk '{s += $1} END {print s}')")
    # Batches decided again because another node appended first (gatehouse_writer_conflicts).
    for n in 0 1 2; do
      curl -sf -H "Authorization: $admin" "${bases[$n]}/access/api/v1/metrics"
    done | awk '/^gatehouse_writer_conflicts_total/ {s += $2} END {print s + 0}' > "$tmp/pg-conflicts"
    conflicts+=("$(cat "$tmp/pg-conflicts")")
    if [ "$run" = "$RUNS" ]; then
      echo "postgres: follow lag between two of the nodes..." >&2
      "$tools/examples/followbench" "${bases[0]}" "${bases[1]}" bench-admin-pw 300 > "$tmp/follow.txt"
      # Same state everywhere, and one chain.
      local d0 d1 d2
      sleep 1
      d0=$(curl -sf -H "Authorization: $admin" "${bases[0]}/access/api/v1/system/state/digest" | sed 's/.*"digest":"\([^"]*\)".*/\1/')
      d1=$(curl -sf -H "Authorization: $admin" -H "X-Gatehouse-Min-Seq: 1" "${bases[1]}/access/api/v1/system/state/digest" | sed 's/.*"digest":"\([^"]*\)".*/\1/')
      d2=$(curl -sf -H "Authorization: $admin" "${bases[2]}/access/api/v1/system/state/digest" | sed 's/.*"digest":"\([^"]*\)".*/\1/')
      [ "$d0" = "$d1" ] && [ "$d1" = "$d2" ] || echo "postgres: the nodes' digests differ ($d0 $d1 $d2)" >&2
    fi
    pg_nodes_stop
  done
  pg_verify=$("$release/gatehouse" verify --store "$url" 2>&1 | tail -1)
  pg_stop

  local sled_m one_m ping_m three_m three_ping_m
  sled_m=$(printf '%s\n' "${sled[@]}" | median)
  one_m=$(printf '%s\n' "${one[@]}" | median)
  ping_m=$(printf '%s\n' "${ping[@]}" | median)
  three_m=$(printf '%s\n' "${three_sum[@]}" | median)
  three_ping_m=$(printf '%s\n' "${three_ping[@]}" | median)
  fl() { awk -F= -v k="$1" '$1 == k {print $2}' "$tmp/follow.txt"; }
  cat <<TABLE

Several nodes on one PostgreSQL log — $(nproc) cores, PostgreSQL $(basename "$(dirname "$pgbin")") on the same machine (fsync on), wrk -t2, ${SECONDS_PER_RUN}s per run, median of $RUNS runs
| figure | value | vs baseline | target |
|---|---|---|---|
| baseline: GET /api/system/ping, no auth (sled node) | $(printf '%.0f' "$ping_m") req/s | 1.00 | — |
| durable writes on sled: POST a group, $CONNECTIONS clients | $(printf '%.0f' "$sled_m") writes/s | $(ratio "$sled_m" "$ping_m") | — |
| durable writes on one node with PostgreSQL, $CONNECTIONS clients | $(printf '%.0f' "$one_m") writes/s | $(ratio "$one_m" "$sled_m") of sled | report |
| three nodes writing at once, $(( CONNECTIONS / 3 )) clients each (sum) | $(printf '%.0f' "$three_m") writes/s | $(ratio "$three_m" "$one_m") of one node | report |
| follow lag: commit on node A → read on node B answers 200 (LISTEN/NOTIFY), p50 / p99 / max | $(fl follow_p50_ms) ms / $(fl follow_p99_ms) ms / $(fl follow_max_ms) ms | — | report |
| read-your-writes on node B with X-Gatehouse-Min-Seq, p50 / p99 | $(fl min_seq_p50_ms) ms / $(fl min_seq_p99_ms) ms | — | report |

all runs: sled ${sled[*]} | postgres one node ${one[*]} | three nodes (sum) ${three_sum[*]}, batches decided again after a conflict ${conflicts[*]} | ping ${ping[*]} | ping beside three nodes ${three_ping[*]}
shared log after the runs: $pg_verify
TABLE
}
pg_part
