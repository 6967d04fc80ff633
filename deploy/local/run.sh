#!/usr/bin/env bash
# Runs relay end to end on this machine:
#   - PostgreSQL: a throwaway cluster, unless DATABASE_URL is set;
#   - the UCWA simulator (a stand-in Skype for Business server), unless
#     RELAY_CONFIG names your own configuration;
#   - relay itself, with deploy/relay.example.yaml (or $RELAY_CONFIG),
#     listening on 127.0.0.1:9095. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${TMPDIR:-/tmp}/relay-dev
mkdir -p "$work/bin"

if [[ -z "${DATABASE_URL:-}" ]]; then
  line=$(deploy/local/postgres.sh start "$work/pg" "${RELAY_DEV_PGPORT:-55432}")
  export DATABASE_URL=${line#DATABASE_URL=}
  echo "run.sh: PostgreSQL in $work/pg on port ${RELAY_DEV_PGPORT:-55432}" >&2
fi

go build -o "$work/bin/relay" ./cmd/relay
go build -o "$work/bin/ucwa-sim" ./cmd/ucwa-sim

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

config=${RELAY_CONFIG:-deploy/relay.example.yaml}
if [[ -z "${RELAY_CONFIG:-}" ]]; then
  # Demo secrets. The example config's discovery URL is the simulator's root.
  export RELAY_UCWA_PASSWORD=${RELAY_UCWA_PASSWORD:-demo-password}
  export RELAY_API_TOKEN=${RELAY_API_TOKEN:-demo-api-token}
  export RELAY_ROUTE_PROD_TOKEN=${RELAY_ROUTE_PROD_TOKEN:-demo-prod-token}
  "$work/bin/ucwa-sim" -root-port 8443 -control-port 8444 \
    -username alerts@contoso.com -password "$RELAY_UCWA_PASSWORD" >"$work/ucwa-sim.out" 2>"$work/ucwa-sim.log" &
  pids+=($!)
  for _ in $(seq 50); do grep -q '^discovery_url=' "$work/ucwa-sim.out" 2>/dev/null && break; sleep 0.1; done
  sed 's/^/ucwa-sim: /' "$work/ucwa-sim.out" >&2
  cat >&2 <<TXT

relay is starting on http://127.0.0.1:9095 (logs below). Try, in another shell:

  curl -sS -H 'Authorization: Bearer $RELAY_ROUTE_PROD_TOKEN' -H 'Content-Type: application/json' \\
       --data @deploy/examples/alertmanager-firing.json http://127.0.0.1:9095/v1/webhooks/prod
  curl -sS -H 'Authorization: Bearer $RELAY_API_TOKEN' http://127.0.0.1:9095/v1/deliveries
  curl -sS http://127.0.0.1:8444/sim/messages        # what the simulated Skype server received

TXT
fi

"$work/bin/relay" serve --config "$config" &
pids+=($!)
wait "${pids[-1]}"
