#!/usr/bin/env bash
# Ingest load benchmark: relay's POST /v1/webhooks/{route} against pgbench
# writing the very same rows (one notification, its dedup key and its
# delivery, in one statement per transaction), at 1, 8 and 32 concurrent
# senders, on a throwaway PostgreSQL on loopback.
#
#   deploy/local/bench-ingest.sh            10 s per step
#   DURATION=30 deploy/local/bench-ingest.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
dur=${DURATION:-10}
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
# payload is read as text and parsed into jsonb per row, as relay's insert
# does with the body it received.
psql_as "$bin/psql" -h 127.0.0.1 -p "$port" -U "$super" -d relay -qc \
  "COPY (SELECT n.payload, d.text FROM notifications n JOIN deliveries d ON d.notification_id = n.id LIMIT 1) TO STDOUT" \
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
    INSERT INTO notifications (id, route, format, dedup_key, payload, received_at)
    SELECT k.notification_id, 'bench', 'alertmanager', md5(k.notification_id), s.payload::jsonb, now() FROM k, bench_shape s
    RETURNING id
), dl AS (
    INSERT INTO deliveries (operation_id, notification_id, route, conversation, recipient, subject,
                            importance, group_key, status, part, parts, text, next_attempt_at,
                            created_at, queued_at, updated_at)
    SELECT n.id || '-1', n.id, 'bench', 'oncall', 'sip' || chr(58) || 'oncall@contoso.com', 'Production alerts',
           'Normal', md5(n.id), 'firing', 1, 1, s.text, now(), now(), now(), now() FROM n, bench_shape s
)
SELECT notification_id FROM k;
SQL
chmod 644 "$work/insert.sql"

printf '%-8s %12s %10s %10s %14s %10s %8s\n' senders relay_req/s p50_ms p99_ms pgbench_tps pg_p50ms ratio
for c in $levels; do
  r=$("$work/bin/relay-load" -url "$url" -c "$c" -d "${dur}s")
  rps=$(sed -E 's/.*"rps":([0-9.]+).*/\1/' <<<"$r")
  p50=$(sed -E 's/.*"p50_ms":([0-9.]+).*/\1/' <<<"$r")
  p99=$(sed -E 's/.*"p99_ms":([0-9.]+).*/\1/' <<<"$r")
  j=$(( c < 2 ? c : 2 ))
  pg=$(psql_as "$bin/pgbench" -h 127.0.0.1 -p "$port" -U "$super" -n -M prepared -c "$c" -j "$j" -T "$dur" \
        -f "$work/insert.sql" pgbench 2>&1)
  tps=$(grep -E '^tps' <<<"$pg" | head -n 1 | sed -E 's/tps = ([0-9.]+).*/\1/')
  lat=$(grep -E '^latency average' <<<"$pg" | sed -E 's/.*= ([0-9.]+) ms/\1/')
  ratio=$(awk -v a="$rps" -v b="$tps" 'BEGIN { printf "%.2f", a / b }')
  printf '%-8s %12.0f %10.2f %10.2f %14.0f %10s %8s\n' "$c" "$rps" "$p50" "$p99" "$tps" "${lat:-?}" "$ratio"
done
echo "(pg_p50ms is pgbench's average latency; ratio = relay req/s / pgbench tps at equal senders)"
