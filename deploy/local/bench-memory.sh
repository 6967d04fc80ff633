#!/usr/bin/env bash
# Memory under big webhooks: starts relay (the real binary, real PostgreSQL),
# sends it 1 MiB authenticated Alertmanager notifications and reports the
# relay's resident memory with what it answered.
#
#   deploy/local/bench-memory.sh burst [N]                 N (150) requests at once, one connection each:
#                                                          peak RSS (VmHWM), answers by status, connections
#                                                          closed without an answer, and whether the
#                                                          database holds exactly the notifications
#                                                          answered 2xx; exits 1 when not
#   deploy/local/bench-memory.sh sustained [SENDERS] [S]   SENDERS (40) senders for S (60) seconds: peak and
#                                                          last RSS while sending, then RSS at each of
#                                                          AFTER ("30 150") seconds later
#
# PostgreSQL: a throwaway database on ADMIN_DATABASE_URL's server when set
# (dropped at the end), else a throwaway cluster. SIZE sets the body size
# (1048576) and ALERTS the alerts per notification (1000, the most relay
# takes); INGEST adds keys to the relay's ingest section, for example
# INGEST='max_inflight_bytes: 33554432'; CLOSE=1 makes the burst's requests
# ask for their connections to be closed after the answer (Connection:
# close). Extra environment (GOMEMLIMIT, GOGC) reaches the relay as usual.
# RELAY_BIN runs that relay binary instead of building one (to compare
# versions).
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-burst}
size=${SIZE:-1048576}
alerts=${ALERTS:-1000}
work=${TMPDIR:-/tmp}/relay-bench-memory
relay_port=${BENCH_RELAY_PORT:-19097}
token=bench-token-$RANDOM$RANDOM

rm -rf "$work" && mkdir -p "$work/bin" && chmod 755 "$work"
if [[ -n "${RELAY_BIN:-}" ]]; then cp "$RELAY_BIN" "$work/bin/relay"; else go build -o "$work/bin/relay" ./cmd/relay; fi
go build -o "$work/bin/relay-load" ./cmd/relay-load

cleanups=()
cleanup() { for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do eval "${cleanups[i]}" || true; done; }
trap cleanup EXIT
if [[ -n "${ADMIN_DATABASE_URL:-}" ]]; then
  db=relay_bench_memory_$$
  psql "$ADMIN_DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null
  cleanups+=("psql '$ADMIN_DATABASE_URL' -qc 'DROP DATABASE IF EXISTS $db WITH (FORCE)' >/dev/null")
  db_url=$(sed -E "s#^(postgres(ql)?://[^/]*)/[^?]*#\1/$db#" <<<"$ADMIN_DATABASE_URL")
else
  line=$(deploy/local/postgres.sh start "$work/pg" "${BENCH_PGPORT:-55435}")
  cleanups+=("deploy/local/postgres.sh stop '$work/pg'")
  db_url=${line#DATABASE_URL=}
fi

cat > "$work/relay.yaml" <<YAML
listen_address: "127.0.0.1:$relay_port"
ingest:
  max_body_bytes: $(( size > 1048576 ? size : 1048576 ))
  ${INGEST:-}
conversations:
  oncall: { to: "sip:oncall@contoso.com", subject: "Production alerts" }
routes:
  - name: bench
    format: alertmanager
    conversations: [oncall]
log: { level: ${LOG_LEVEL:-warn} }
YAML
DATABASE_URL=$db_url RELAY_ROUTE_BENCH_TOKEN=$token "$work/bin/relay" serve --config "$work/relay.yaml" 2>"$work/relay.log" &
relay_pid=$!
cleanups+=("kill $relay_pid 2>/dev/null; wait $relay_pid 2>/dev/null")
ready=""
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$relay_port/-/ready" >/dev/null 2>&1 && ready=1 && break
  sleep 0.1
done
if [[ -z "$ready" ]] || ! kill -0 "$relay_pid" 2>/dev/null; then
  echo "bench-memory.sh: relay did not become ready:" >&2
  tail -n 5 "$work/relay.log" >&2
  exit 1
fi
url="http://127.0.0.1:$relay_port/v1/webhooks/bench"
mib() { awk -v k="$(awk -v f="$1:" '$1 == f { print $2 }' "/proc/$relay_pid/status")" 'BEGIN { printf "%.0f", k / 1024 }'; }
echo "relay ready, RSS $(mib VmRSS) MiB" >&2

case $mode in
burst)
  n=${2:-150}
  status=0
  out=$("$work/bin/relay-load" -url "$url" -token "$token" -burst "$n" -size "$size" -alerts "$alerts" -db "$db_url" \
    ${CLOSE:+-close}) || status=$?
  echo "$out"
  echo "peak RSS (VmHWM) $(mib VmHWM) MiB, RSS now $(mib VmRSS) MiB" >&2
  exit "$status"
  ;;
sustained)
  senders=${2:-40} secs=${3:-60} after=${AFTER:-30 150}
  ( while sleep 1; do awk '$1 == "VmRSS:" { printf "%.0f\n", $2 / 1024 }' "/proc/$relay_pid/status"; done ) >"$work/rss" &
  sampler=$!
  cleanups+=("kill $sampler 2>/dev/null")
  "$work/bin/relay-load" -url "$url" -token "$token" -c "$senders" -d "${secs}s" -size "$size" -alerts "$alerts" || true
  during=$(sort -n "$work/rss" | tail -n 1)
  last=$(mib VmRSS)
  later="" waited=0
  for s in $after; do
    sleep $(( s - waited )); waited=$s
    later+=", ${s} s later $(mib VmRSS) MiB"
  done
  echo "while sending: peak RSS $during MiB (VmHWM $(mib VmHWM) MiB), $last MiB at the end$later" >&2
  ;;
*)
  echo "usage: $0 burst [N] | sustained [SENDERS] [SECONDS]" >&2
  exit 2
  ;;
esac
