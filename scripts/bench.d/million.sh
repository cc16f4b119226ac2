# Part `million` of scripts/bench (sourced by it; BENCH_ONLY=million runs only this part).
# The large site of issue 18: 1,000,000 users in 100,000 groups and 100,000 permission
# targets (plus the usual 200 projects, 1,000 access keys and 10,000 entitlements), built
# in-process by examples/authzbench.rs, then a server started from the data directory it
# leaves (snapshot at the head): time to ready, and resident memory once ready.
million_users=${BENCH_MILLION_USERS:-1000000}
million_groups=${BENCH_MILLION_GROUPS:-100000}
million_targets=${BENCH_MILLION_TARGETS:-100000}
echo "a large site: $million_users users, $million_groups groups, $million_targets targets..." >&2
AUTHZBENCH_USERS=$million_users AUTHZBENCH_GROUPS=$million_groups AUTHZBENCH_TARGETS=$million_targets \
  $tools/examples/authzbench "$tmp/million" > "$tmp/million.txt"
mv_() { awk -F= -v k="$1" '$1 == k {print $2}' "$tmp/million.txt"; }
declare -a million_ready million_rss
for run in $(seq 1 "$RUNS"); do
  t0=$(date +%s%N)
  start_server "$tmp/million"
  until curl -sf -o /dev/null "$base/api/v1/system/readiness"; do sleep 0.01; done
  million_ready+=("$(( ($(date +%s%N) - t0) / 1000000 ))")
  million_rss+=("$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$server_pid/status")")
  stop_server
done
million_disk=$(du -sm "$tmp/million" | cut -f1)
cat <<ROWS

Large site — $million_users users, $million_groups groups, $million_targets targets, median of $RUNS starts
| figure | value | target |
|---|---|---|
| read models in-process (growth while applying the events, + the authorize index) | $(mv_ dataset_rss_mib) MiB | report |
| server resident memory once ready (started from a snapshot at the head) | $(printf '%s\n' "${million_rss[@]}" | median) MiB | ≤ 2,048 MiB |
| server start-up to ready from that snapshot | $(printf '%s\n' "${million_ready[@]}" | median) ms | ≤ 5,000 ms |
| authorize in-process at that size: p50 / p99 | $(mv_ decision_p50_us) µs / $(mv_ decision_p99_us) µs | p99 ≤ 20 µs |
| data directory on disk ($(mv_ events) events and one snapshot) | $million_disk MiB | report |

all starts: ready ${million_ready[*]} ms | resident ${million_rss[*]} MiB
ROWS
