#!/usr/bin/env bash
# Ingest load benchmark: relay's POST /v1/webhooks/{route} against pgbench
# writing the very same rows (one notification, its dedup key and its
# delivery, in one statement per transaction), at 1, 8 and 32 concurrent
# senders, on a throwaway PostgreSQL on loopback.
#
# Timings on a small shared machine drift by tens of percent from one minute
# to the next, so relay and pgbench take turns: ROUNDS rounds, each running
# every level with both (which goes first alternates), and the table shows
# medians, with the range of the per-round ratios.
#
#   deploy/local/bench-ingest.sh                    3 rounds of 5 s per step
#   ROUNDS=5 DURATION=10 deploy/local/bench-ingest.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
dur=${DURATION:-5}
rounds=${ROUNDS:-3}
levels=${LEVELS:-"1 8 32"}
work=${TMPDIR:-/tmp}/relay-bench
port=${BENCH_PGPORT:-55434}
relay_port=${BENCH_RELAY_PORT:-19095}

deploy/local/postgres.sh stop "$work/pg" 2>/dev/null || true
rm -rf "$work" && mkdir -p "$work/bin"
chmod 755 "$work"
line=$(deploy/local/postgres.sh start "$work/pg" "$port")
db_url=${line#DATABASE_URL=}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
psql_as() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
super=$( [[ $(id -u) -eq 0 ]] && echo postgres || id -un )
psql_as "$bin/psql" -h 127.0.0.1 -p "$port" -U "$super" -d postgres -qc "CREATE DATABASE pgbench" >/dev/null
pgb_url=${db_url%/relay*}/pgbench?sslmode=disable

go build -o "$work/bin/relay" ./cmd/relay
go build -o "$work/bin/relay-load" ./cmd/relay-load
DATABASE_URL=$pgb_url "$work/bin/relay" migrate up >/dev/null

cat > "$work/relay.yaml" <<YAML
listen_address: "127.0.0.1:$relay_port"
conversations:
  oncall: { to: "sip:oncall@contoso.com", subject: "Production alerts" }
routes:
  - name: bench
    format: alertmanager
    conversations: [oncall]
log: { level: warn }
YAML
DATABASE_URL=$db_url "$work/bin/relay" serve --config "$work/relay.yaml" 2>"$work/relay.log" &
relay_pid=$!
cleanup() { kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true; deploy/local/postgres.sh stop "$work/pg"; }
trap cleanup EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$relay_port/-/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
url="http://127.0.0.1:$relay_port/v1/webhooks/bench"
"$work/bin/relay-load" -url "$url" -c 4 -d 2s >/dev/null # warm up

# pgbench writes the rows relay wrote: same payload, same text. They sit in
# a one-row table (a literal would trip pgbench's :variable syntax); the
# payload is stored as bytes, as relay stores the body it received.
psql_as "$bin/psql" -h 127.0.0.1 -p "$port" -U "$super" -d relay -qc \
  "COPY (SELECT convert_from(n.body, 'UTF8'), d.text FROM notifications n JOIN deliveries d ON d.notification_id = n.id LIMIT 1) TO STDOUT" \
  | psql_as "$bin/psql" -h 127.0.0.1 -p "$port" -U "$super" -d pgbench -qc \
  "CREATE TABLE bench_shape (payload text, text text); COPY bench_shape FROM STDIN" >/dev/null
cat > "$work/insert.sql" <<'SQL'
WITH p AS (SELECT upper(substr(md5(random()::text || clock_timestamp()::text), 1, 26)) AS id),
k AS (
    INSERT INTO dedup_keys AS d (key, notification_id, operation_ids, expires_at)
    SELECT md5(p.id), p.id, ARRAY[p.id || '-1'], now() + interval '15 minutes' FROM p
    ON CONFLICT (key) DO UPDATE SET
        notification_id = CASE WHEN d.expires_at <= now() THEN excluded.notification_id ELSE d.notification_id END,
        operation_ids   = CASE WHEN d.expires_at <= now() THEN excluded.operation_ids   ELSE d.operation_ids   END,
        expires_at      = CASE WHEN d.expires_at <= now() THEN excluded.expires_at      ELSE d.expires_at      END
    RETURNING d.notification_id, d.operation_ids
), n AS (
    INSERT INTO notifications (id, route, format, dedup_key, body, received_at)
    SELECT k.notification_id, 'bench', 'alertmanager', md5(k.notification_id), convert_to(s.payload, 'UTF8'), now() FROM k, bench_shape s
    RETURNING id
), dl AS (
    INSERT INTO deliveries (operation_id, notification_id, route, conversation, recipient, subject,
                            importance, group_key, status, part, parts, text, alertname, group_status, receiver,
                            next_attempt_at, created_at, queued_at, updated_at)
    SELECT n.id || '-1', n.id, 'bench', 'oncall', 'sip' || chr(58) || 'oncall@contoso.com', 'Production alerts',
           'Normal', md5(n.id), 'firing', 1, 1, s.text, 'HighCPU', 'firing', 'relay', now(), now(), now(), now()
    FROM n, bench_shape s
)
SELECT notification_id FROM k;
SQL
chmod 644 "$work/insert.sql"

run_relay() { # senders -> "rps p50 p99"
  local r
  r=$("$work/bin/relay-load" -url "$url" -c "$1" -d "${dur}s")
  sed -E 's/.*"rps":([0-9.]+).*"p50_ms":([0-9.]+).*"p99_ms":([0-9.]+).*/\1 \2 \3/' <<<"$r"
}
run_pgbench() { # senders -> "tps latency_ms"
  local pg j=$(( $1 < 2 ? $1 : 2 ))
  pg=$(psql_as "$bin/pgbench" -h 127.0.0.1 -p "$port" -U "$super" -n -M prepared -c "$1" -j "$j" -T "$dur" \
        -f "$work/insert.sql" pgbench 2>&1)
  echo "$(grep -E '^tps' <<<"$pg" | head -n 1 | sed -E 's/tps = ([0-9.]+).*/\1/') \
$(grep -E '^latency average' <<<"$pg" | sed -E 's/.*= ([0-9.]+) ms/\1/')"
}

: > "$work/results"
for round in $(seq "$rounds"); do
  for c in $levels; do
    if (( round % 2 )); then
      rl=$(run_relay "$c"); pg=$(run_pgbench "$c")
    else
      pg=$(run_pgbench "$c"); rl=$(run_relay "$c")
    fi
    echo "$round $c $rl $pg" | tee -a "$work/results" | \
      awk '{ printf "round %d, %2d senders: relay %6.0f req/s (p50 %.2f ms, p99 %.2f ms), pgbench %6.0f tps, ratio %.2f\n", $1, $2, $3, $4, $5, $6, $3 / $6 }' >&2
  done
done

echo
printf '%-8s %12s %10s %10s %14s %12s %8s %12s\n' senders relay_req/s p50_ms p99_ms pgbench_tps pg_lat_ms ratio ratio_range
for c in $levels; do
  awk -v c="$c" '
    function median(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
      return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    $2 == c { n++; rps[n] = $3; p50[n] = $4; p99[n] = $5; tps[n] = $6; lat[n] = $7; ratio[n] = $3 / $6
              if (n == 1 || ratio[n] < lo) lo = ratio[n]; if (n == 1 || ratio[n] > hi) hi = ratio[n] }
    END { printf "%-8s %12.0f %10.2f %10.2f %14.0f %12.2f %8.2f %6.2f–%.2f\n", c, median(rps, n), median(p50, n),
          median(p99, n), median(tps, n), median(lat, n), median(ratio, n), lo, hi }' "$work/results"
done
echo "(medians over $rounds rounds of ${dur} s; ratio = relay req/s / pgbench tps in the same round, median and range)"
