# Part `write-tail` of scripts/bench (sourced by it; BENCH_ONLY=write-tail runs only this
# part). The tail latency of durable writes while the state grows and snapshots of it are
# written in the background: one server, BENCH_TAIL_RUNS runs (default 8) of SCIM creates
# one after the other (each run adds a few hundred thousand users, so the snapshots grow
# to hundreds of MiB). For each run: the rate, wrk's p50 / p99, and whether a snapshot was
# finished during it or was still being written when it ended. Report only: the medians
# of the core table hide such a tail.
tail_runs=${BENCH_TAIL_RUNS:-8}
echo "write tail: $tail_runs SCIM create runs on one growing state..." >&2
start_server "$tmp/write-tail"
tail_admin="Basic $(printf 'admin:bench-admin-pw' | base64)"
tail_rows=""
declare -a tail_with tail_without
for run in $(seq 1 "$tail_runs"); do
  out=$(GH_AUTH="$tail_admin" GH_RUN="tail$run" wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" \
    --latency -s scripts/bench.d/scim-create-user.lua "$base")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "write-tail: some answers were not 2xx:" >&2; echo "$out" >&2; exit 1
  fi
  rate=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out" | ms_of)
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out" | ms_of)
  p50=${p50% }; p99=${p99% }
  age=$(curl -sf -H "Authorization: $tail_admin" "$base/metrics" |
    awk '$1 == "gatehouse_snapshot_age_seconds" {printf "%.0f", $2}')
  snap_mib=$(du -sm "$tmp/write-tail/snapshots" | cut -f1)
  if [ "${age:-999999}" -le "$SECONDS_PER_RUN" ]; then
    during="one finished during it"; tail_with+=("$p99")
  elif compgen -G "$tmp/write-tail/snapshots/*.tmp" >/dev/null; then
    during="one under way at its end"; tail_with+=("$p99")
  else
    during="none"; tail_without+=("$p99")
  fi
  tail_rows+="| write tail: SCIM create run $run of $tail_runs on one growing state | $rate users/s, p50 $p50 ms, p99 $p99 ms | snapshot: $during (on disk: $snap_mib MiB) | report |
"
done
stop_server
# tail_max P99... -> the largest, in ms ("—" when there is none)
tail_max() { if [ $# -gt 0 ]; then echo "$(printf '%s\n' "$@" | sort -g | tail -1) ms"; else echo "—"; fi; }

cat <<TABLE

| figure | value | vs baseline | target |
|---|---|---|---|
${tail_rows}| write tail: worst p99 of the runs a snapshot was written in / of the others | $(tail_max "${tail_with[@]}") / $(tail_max "${tail_without[@]}") | — | report |
TABLE
