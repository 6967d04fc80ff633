#!/usr/bin/env bash
# History benchmark: what a long history costs. On a throwaway PostgreSQL on
# loopback, one database stays empty and one is filled with HISTORY_ROWS
# finished deliveries spread over the last 30 days (deploy/bench/
# fill-history.sql: INSERT ... SELECT over generate_series) plus EXPIRED_ROWS
# more from 31 to 40 days ago. Then, taking turns between the two databases
# for ROUNDS rounds (medians reported):
#   - ingest at 8 senders for DURATION seconds (relay-load, delivery off):
#     requests per second and p99;
#   - 20 scrapes of /metrics: median and slowest;
#   - claim-to-finish of 4,000 deliveries (BenchmarkClaimFinish): p50, p99;
#   - the store alone at 8 senders (BenchmarkEnqueue: no HTTP, no templates,
#     so less noise from the load generator sharing the cores).
# Last, relay runs on the history database with retention 720h and its
# sweep deletes the expired rows: ingest p99 before the sweep and while it
# runs, and how long the sweep took.
#
#   make bench/history                                  5 million rows
#   HISTORY_ROWS=1000000 EXPIRED_ROWS=200000 deploy/bench/history.sh
#   REUSE=1 deploy/bench/history.sh                     keep the databases of the last run
#                                                       (the expired rows are filled again)
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${HISTORY_ROWS:-5000000}
expired=${EXPIRED_ROWS:-1000000}
dur=${DURATION:-10}
rounds=${ROUNDS:-3}
work=${TMPDIR:-/tmp}/relay-history-bench
port=${BENCH_PGPORT:-55436}
relay_port=${BENCH_RELAY_PORT:-19096}

reuse=${REUSE:-}
deploy/local/postgres.sh stop "$work/pg" 2>/dev/null || true
if [[ -z "$reuse" || ! -d "$work/pg" ]]; then
  reuse=
  rm -rf "$work"
fi
mkdir -p "$work/bin"
chmod 755 "$work"
line=$(deploy/local/postgres.sh start "$work/pg" "$port")
base=${line#DATABASE_URL=}
base=${base%/relay*}
url_of() { echo "$base/$1?sslmode=disable"; }
relay_pid=
stop_relay() { [[ -n "$relay_pid" ]] && { kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true; }; relay_pid=; }
cleanup() { stop_relay; deploy/local/postgres.sh stop "$work/pg"; }
trap cleanup EXIT

go build -o "$work/bin/relay" ./cmd/relay
go build -o "$work/bin/relay-load" ./cmd/relay-load
go test -c -o "$work/bin/store.test" ./relay/store/

start=$(date +%s)
if [[ -z "$reuse" ]]; then
  for db in empty history; do
    psql "$(url_of postgres)" -qc "CREATE DATABASE $db" >/dev/null
    DATABASE_URL=$(url_of $db) "$work/bin/relay" migrate up >/dev/null
  done
  echo "filling the history database: $rows deliveries over 30 days" >&2
  psql "$(url_of history)" -q -v deliveries="$rows" -v days=30 -f deploy/bench/fill-history.sql
else
  # The empty database starts empty again; the history keeps its rows.
  psql "$(url_of postgres)" -qc "DROP DATABASE empty" -c "CREATE DATABASE empty" >/dev/null
  DATABASE_URL=$(url_of empty) "$work/bin/relay" migrate up >/dev/null
  psql "$(url_of history)" -qc "DELETE FROM attempts WHERE operation_id LIKE 'old%'" \
    -c "DELETE FROM deliveries WHERE operation_id LIKE 'old%'" \
    -c "DELETE FROM duplicates WHERE notification_id LIKE 'old%'" -c "DELETE FROM notifications WHERE id LIKE 'old%'"
fi
# A database kept from an older run may need migrations (an index over the
# whole history takes a while): applied here, not inside a timed run.
DATABASE_URL=$(url_of history) "$work/bin/relay" migrate up >/dev/null
echo "filling the history database: $expired deliveries 31-40 days old, to be swept" >&2
psql "$(url_of history)" -q -v deliveries="$expired" -v days=9 -v ago=31 -v tag=old -f deploy/bench/fill-history.sql
fill_s=$(( $(date +%s) - start ))
psql "$(url_of history)" -Atc "SELECT 'history: ' || (SELECT count(*) FROM deliveries) || ' deliveries, '
  || (SELECT count(*) FROM notifications) || ' notifications, ' || (SELECT count(*) FROM attempts) || ' attempts, '
  || pg_size_pretty(pg_database_size(current_database())) || ' on disk'" >&2

start_relay() { # database retention
  cat > "$work/relay.yaml" <<YAML
listen_address: "127.0.0.1:$relay_port"
conversations:
  oncall: { to: "sip:oncall@contoso.com", subject: "Production alerts" }
routes:
  - name: bench
    format: alertmanager
    conversations: [oncall]
retention: $2
log: { level: warn }
YAML
  DATABASE_URL=$(url_of "$1") "$work/bin/relay" serve --config "$work/relay.yaml" 2>>"$work/relay-$1.log" &
  relay_pid=$!
  for _ in $(seq 600); do
    curl -fsS "http://127.0.0.1:$relay_port/-/ready" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "relay did not get ready; see $work/relay-$1.log" >&2; exit 1
}
ingest() { # -> "rps p99"
  "$work/bin/relay-load" -url "http://127.0.0.1:$relay_port/v1/webhooks/bench" -c 8 -d "${1}s" |
    sed -E 's/.*"rps":([0-9.]+).*"p99_ms":([0-9.]+).*/\1 \2/'
}
scrapes() { # -> "median_ms max_ms" over 20 scrapes
  for _ in $(seq 20); do
    curl -fsS -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$relay_port/metrics"
  done | sort -n | awk '{ t[NR] = $1 * 1000 } END { printf "%.1f %.1f\n", (t[10] + t[11]) / 2, t[NR] }'
}
store_ingest() { # database -> req/s of the store alone at 8 senders (no HTTP, no templates)
  BENCH_DATABASE_URL=$(url_of "$1") "$work/bin/store.test" -test.run '^$' -test.bench 'Enqueue$/senders=8$' -test.benchtime 3000x |
    awk '/^BenchmarkEnqueue/ { for (i = 1; i <= NF; i++) if ($i == "req/s") print $(i-1) }'
}
claim_finish() { # database -> "p50 p99"
  BENCH_DATABASE_URL=$(url_of "$1") "$work/bin/store.test" -test.run '^$' -test.bench ClaimFinish -test.benchtime 4000x |
    awk '/^BenchmarkClaimFinish/ { for (i = 1; i <= NF; i++) { if ($i == "p50-ms") p50 = $(i-1); if ($i == "p99-ms") p99 = $(i-1) } }
         END { print p50, p99 }'
}

: > "$work/results"
for round in $(seq "$rounds"); do
  order="empty history"; (( round % 2 )) || order="history empty"
  for db in $order; do
    start_relay "$db" 0
    "$work/bin/relay-load" -url "http://127.0.0.1:$relay_port/v1/webhooks/bench" -c 4 -d 2s >/dev/null # warm up
    sleep 16 # the first queue figures are read
    r=$(ingest "$dur"); s=$(scrapes)
    stop_relay
    c=$(claim_finish "$db"); st=$(store_ingest "$db")
    echo "$round $db $r $s $c $st" | tee -a "$work/results" |
      awk '{ printf "round %d, %-7s: ingest %5.0f req/s (p99 %.1f ms), scrape median %.1f ms (max %.1f), claim-to-finish p50 %.2f ms, p99 %.2f ms, store alone %5.0f req/s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' >&2
  done
done

# The sweep: the expired rows go while webhooks arrive.
start_relay history 720h
before=$(ingest "$dur")
echo "ingest before the sweep: $before (req/s, p99 ms)" >&2
deleted() { curl -fsS "http://127.0.0.1:$relay_port/metrics" | awk '/^relay_retention_deleted_rows_total\{table="deliveries"\}/ { print $2 }'; }
for _ in $(seq 900); do [[ "$(deleted)" != "0" ]] && break; sleep 0.2; done
during=$(ingest "$dur")
still=$(deleted)
echo "ingest during the sweep: $during (req/s, p99 ms); $still deliveries deleted when it ended" >&2
for _ in $(seq 3000); do
  curl -fsS "http://127.0.0.1:$relay_port/metrics" | grep -q '^relay_retention_sweep_duration_seconds_count 1' && break
  sleep 0.2
done
sweep_s=$(curl -fsS "http://127.0.0.1:$relay_port/metrics" | awk '/^relay_retention_sweep_duration_seconds_sum/ { print $2 }')
swept=$(deleted)
stop_relay

echo
echo "history: $rows deliveries (+ $expired expired), filled in $fill_s s${reuse:+ (reused; the expired ones filled again)}"
printf '%-8s %12s %10s %12s %12s %10s %10s %12s\n' db ingest_req/s p99_ms scrape_ms scrape_max claim_p50 claim_p99 store_req/s
for db in empty history; do
  awk -v db="$db" '
    function median(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
      return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    $2 == db { n++; r[n] = $3; p[n] = $4; s[n] = $5; if ($6 > smax) smax = $6; c5[n] = $7; c9[n] = $8; st[n] = $9 }
    END { printf "%-8s %12.0f %10.1f %12.1f %12.1f %10.2f %10.2f %12.0f\n", db, median(r, n), median(p, n), median(s, n), smax, median(c5, n), median(c9, n), median(st, n) }' "$work/results"
done
awk '$2 == "empty" { e[$1] = $3; es[$1] = $9 } $2 == "history" { h[$1] = $3; hs[$1] = $9 }
     END { printf "history/empty per round, over HTTP:"; for (k = 1; k in e; k++) printf " %.2f", h[k] / e[k]
           printf "; the store alone:"; for (k = 1; k in e; k++) printf " %.2f", hs[k] / es[k]; print "" }' "$work/results"
echo "sweep of $(printf %.0f "$swept") expired deliveries (with their attempts and notifications): $(printf %.1f "$sweep_s") s"
echo "ingest at 8 senders before the sweep: $(awk '{ printf "%.0f req/s, p99 %.1f ms", $1, $2 }' <<<"$before");" \
  "during it: $(awk '{ printf "%.0f req/s, p99 %.1f ms", $1, $2 }' <<<"$during")"
