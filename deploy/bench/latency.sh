#!/usr/bin/env bash
# End-to-end latency as users feel it: relay (the real binary, delivery on,
# production timers) with the UCWA simulator and a throwaway PostgreSQL on
# loopback; relay-load sends Alertmanager webhooks open-loop at RATE per
# second for DURATION seconds (a slow answer does not slow the next
# request) and measures each message from relay's 202 to the simulator's
# record of it. RUNS runs, one line each, then the p99s side by side.
#
#   make bench/latency                      3 runs of 30 s at 200 webhooks/s
#   RATE=400 RUNS=1 DURATION=10 deploy/bench/latency.sh
#   COALESCE=false deploy/bench/latency.sh  one message per delivery
set -euo pipefail
cd "$(dirname "$0")/../.."
rate=${RATE:-200}
dur=${DURATION:-30}
runs=${RUNS:-3}
work=${TMPDIR:-/tmp}/relay-bench-latency
relay_port=${BENCH_RELAY_PORT:-19098}
token=bench-token-$RANDOM$RANDOM
export RELAY_UCWA_PASSWORD=bench-password-$RANDOM

deploy/local/postgres.sh stop "$work/pg" 2>/dev/null || true
rm -rf "$work" && mkdir -p "$work/bin" && chmod 755 "$work"
pids=()
cleanup() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; wait "${pids[i]}" 2>/dev/null || true; done
  deploy/local/postgres.sh stop "$work/pg" >/dev/null 2>&1 || true
}
trap cleanup EXIT
line=$(deploy/local/postgres.sh start "$work/pg" "${BENCH_PGPORT:-55437}")
db_url=${line#DATABASE_URL=}
# PostgreSQL logs its checkpoints and autovacuum runs, to set beside the
# trace of slow messages ($work/trace-N.csv: ms from the start to the 202,
# latency in ms).
psql -q "$db_url" -c "ALTER SYSTEM SET log_checkpoints = on" -c "ALTER SYSTEM SET log_autovacuum_min_duration = 0" \
  -c "SELECT pg_reload_conf()" >/dev/null

for cmd in relay relay-load ucwa-sim; do go build -o "$work/bin/$cmd" "./cmd/$cmd"; done
"$work/bin/ucwa-sim" -root-port 0 -control-port 0 -username alerts@contoso.com -password "$RELAY_UCWA_PASSWORD" \
  >"$work/sim.out" 2>"$work/sim.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^control_url=' "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
discovery=$(sed -n 's/^discovery_url=//p' "$work/sim.out")
control=$(sed -n 's/^control_url=//p' "$work/sim.out")

cat > "$work/relay.yaml" <<YAML
listen_address: "127.0.0.1:$relay_port"
ucwa:
  discovery_urls: ["$discovery"]
  username: alerts@contoso.com
conversations:
  oncall: { to: "sip:oncall@contoso.com", subject: "Production alerts" }
routes:
  - name: bench
    format: alertmanager
    conversations: [oncall]
    delivery: { coalesce: ${COALESCE:-true} }
log: { level: warn }
YAML
RELAY_ROUTE_BENCH_TOKEN=$token DATABASE_URL=$db_url "$work/bin/relay" serve --config "$work/relay.yaml" 2>"$work/relay.log" &
pids+=($!)
for _ in $(seq 200); do curl -fsS "http://127.0.0.1:$relay_port/-/ready" >/dev/null 2>&1 && break; sleep 0.1; done
load() { "$work/bin/relay-load" -url "http://127.0.0.1:$relay_port/v1/webhooks/bench" -token "$token" -alerts 1 -sim "$control" "$@"; }
load -rate 50 -d 3s >/dev/null # the session, the conversation and the connections warm up

: > "$work/results"
for run in $(seq "$runs"); do
  r=$(load -rate "$rate" -d "${dur}s" -trace "$work/trace-$run.csv") || { echo "run $run failed: $r (see $work/relay.log)" >&2; exit 1; }
  echo "$r" >> "$work/results"
  field() { sed -E "s/.*\"$1\":([0-9.]+).*/\\1/" <<<"$r"; }
  echo "run $run: $(field accepted) accepted of $(field sent) ($(field late) sent late), $(field delivered) delivered;" \
    "202 -> at the server p50 $(field p50_ms) ms, p99 $(field p99_ms) ms, max $(field max_ms) ms; ingest p99 $(field ingest_p99_ms) ms"
done
echo "p99 of each run (ms): $(sed -E 's/.*"p99_ms":([0-9.]+).*/\1/' "$work/results" | paste -sd ' ')"
