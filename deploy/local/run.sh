#!/usr/bin/env bash
# Runs relay end to end on this machine:
#   - PostgreSQL: a throwaway cluster in $TMPDIR/relay-dev/pg on port
#     $RELAY_DEV_PGPORT (55432), unless DATABASE_URL is set;
#   - the UCWA simulator (a stand-in Skype for Business server, control API
#     on 127.0.0.1:8444), unless RELAY_CONFIG names your own configuration;
#   - relay itself, with deploy/relay.example.yaml (or $RELAY_CONFIG),
#     listening on 127.0.0.1:9095.
# Ctrl-C stops all three. PostgreSQL is stopped only if this run started it
# (its data stays in $TMPDIR/relay-dev/pg for the next run); one that was
# running before, or any with RELAY_DEV_KEEP_PG=1, keeps running, and the
# script says how to stop it (deploy/local/postgres.sh stop DIR).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${TMPDIR:-/tmp}/relay-dev
pgdir=$work/pg
pgport=${RELAY_DEV_PGPORT:-55432}
mkdir -p "$work/bin"

pids=()
started_pg=
found_pg=
cleaned=
cleanup() {
  [[ -z "$cleaned" ]] || return 0
  cleaned=1
  # Newest first: relay lets go of its UCWA application while the
  # simulator still answers.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  if [[ -n "$started_pg" && -z "${RELAY_DEV_KEEP_PG:-}" ]]; then
    echo "run.sh: stopping PostgreSQL in $pgdir (the data stays for the next run)" >&2
    deploy/local/postgres.sh stop "$pgdir"
  elif [[ -n "$started_pg" || -n "$found_pg" ]]; then
    why="RELAY_DEV_KEEP_PG is set"
    [[ -n "$started_pg" ]] || why="it was running before"
    echo "run.sh: PostgreSQL keeps running in $pgdir on port $pgport ($why);" \
      "stop it with: deploy/local/postgres.sh stop $pgdir" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z "${DATABASE_URL:-}" ]]; then
  # Stop it afterwards only if this run starts it (another run may share it).
  if deploy/local/postgres.sh status "$pgdir"; then found_pg=1; else started_pg=1; fi
  line=$(deploy/local/postgres.sh start "$pgdir" "$pgport")
  export DATABASE_URL=${line#DATABASE_URL=}
  echo "run.sh: PostgreSQL in $pgdir on port $pgport" >&2
fi

go build -o "$work/bin/relay" ./cmd/relay
go build -o "$work/bin/ucwa-sim" ./cmd/ucwa-sim

config=${RELAY_CONFIG:-deploy/relay.example.yaml}
if [[ -z "${RELAY_CONFIG:-}" ]]; then
  # Demo secrets. The example config's discovery URL is the simulator's root.
  export RELAY_UCWA_PASSWORD=${RELAY_UCWA_PASSWORD:-demo-password}
  export RELAY_API_TOKEN=${RELAY_API_TOKEN:-demo-api-token}
  export RELAY_ROUTE_PROD_TOKEN=${RELAY_ROUTE_PROD_TOKEN:-demo-prod-token}
  # In a session of its own, so that Ctrl-C reaches it only through
  # cleanup, after relay has stopped.
  setsid "$work/bin/ucwa-sim" -root-port 8443 -control-port 8444 \
    -username alerts@contoso.com -password "$RELAY_UCWA_PASSWORD" >"$work/ucwa-sim.out" 2>"$work/ucwa-sim.log" &
  pids+=($!)
  for _ in $(seq 50); do grep -q '^discovery_url=' "$work/ucwa-sim.out" 2>/dev/null && break; sleep 0.1; done
  sed 's/^/ucwa-sim: /' "$work/ucwa-sim.out" >&2
  cat >&2 <<TXT

relay is starting on http://127.0.0.1:9095 (logs below). Try, in another shell:

  curl -sS -H 'Authorization: Bearer $RELAY_ROUTE_PROD_TOKEN' -H 'Content-Type: application/json' \\
       --data @deploy/examples/alertmanager-firing.json http://127.0.0.1:9095/v1/webhooks/prod
  RELAY_API_TOKEN=$RELAY_API_TOKEN $work/bin/relay deliveries list
  RELAY_API_TOKEN=$RELAY_API_TOKEN $work/bin/relay send-test --conversation oncall
  curl -sS http://127.0.0.1:8444/sim/messages        # what the simulated Skype server received
  curl -sS http://127.0.0.1:8444/sim/                # the simulator's control API: fail a pool over and back, ...

Ctrl-C stops relay, the simulator and the PostgreSQL this script started.

TXT
fi

"$work/bin/relay" serve --config "$config" &
pids+=($!)
wait "${pids[-1]}"
