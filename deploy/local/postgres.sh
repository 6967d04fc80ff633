#!/usr/bin/env bash
# Throwaway PostgreSQL for development, tests and benchmarks.
#
#   deploy/local/postgres.sh start DIR PORT   initdb (first time) and start a cluster in DIR on
#                                            127.0.0.1:PORT; prints DATABASE_URL=... on stdout
#   deploy/local/postgres.sh stop DIR [MODE]  stop it (the data stays in DIR); MODE is fast (the
#                                            default) or immediate (as a crash would)
#   deploy/local/postgres.sh status DIR       exit 0 when it runs
#   deploy/local/postgres.sh standby DIR PORT PRIMARY_PORT
#                                            a synchronous streaming standby of the cluster on
#                                            127.0.0.1:PRIMARY_PORT, in DIR on 127.0.0.1:PORT: a base
#                                            backup (pg_basebackup -R), then the primary waits for
#                                            it on every commit (synchronous_standby_names); prints
#                                            DATABASE_URL=... naming both hosts, read-write only
#   deploy/local/postgres.sh promote DIR      make the standby in DIR a primary (pg_ctl promote)
#
# Installs Debian's postgresql package when no server binaries are found (needs root).
# initdb refuses to run as root, so as root the cluster runs as the "postgres" user.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -z "$d" ]] && command -v initdb >/dev/null 2>&1; then d=$(dirname "$(command -v initdb)"); fi
  echo "$d"
}

ensure_installed() {
  local d
  d=$(pg_bindir)
  if [[ -n "$d" && -x "$d/initdb" ]]; then echo "$d"; return; fi
  if [[ $(id -u) -ne 0 ]]; then
    log "PostgreSQL server binaries not found; install them: sudo apt-get install -y postgresql"
    exit 1
  fi
  log "installing postgresql with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql postgresql-contrib >&2
  pg_bindir
}

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

usage="usage: $0 start DIR PORT | stop DIR [fast|immediate] | status DIR | standby DIR PORT PRIMARY_PORT | promote DIR"
cmd=${1:-}
dir=${2:-}
[[ -n "$cmd" && -n "$dir" ]] || { echo "$usage" >&2; exit 2; }

# pg_ctl start for the cluster in $dir on 127.0.0.1:$port.
pg_start() {
  as_owner "$bin/pg_ctl" -D "$dir" -w -t 60 -l "$dir/server.log" \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=300 -c shared_buffers=256MB" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
}

case "$cmd" in
start)
  port=${3:?port required}
  bin=$(ensure_installed)
  mkdir -p "$dir"
  if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$dir"; fi
  chmod 700 "$dir"
  super=$( [[ $(id -u) -eq 0 ]] && echo postgres || id -un )
  if [[ ! -f "$dir/PG_VERSION" ]]; then
    as_owner "$bin/initdb" -D "$dir" -U "$super" --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null \
      || as_owner "$bin/initdb" -D "$dir" -U "$super" --auth=trust --encoding=UTF8 --no-locale >/dev/null
  fi
  if as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    log "already running in $dir"
  else
    pg_start
  fi
  as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U "$super" -d postgres -qtAc \
    "SELECT 1 FROM pg_database WHERE datname = 'relay'" | grep -q 1 \
    || as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U "$super" -d postgres -qc "CREATE DATABASE relay" >/dev/null
  echo "DATABASE_URL=postgres://$super@127.0.0.1:$port/relay?sslmode=disable"
  ;;
status)
  bin=$(pg_bindir)
  [[ -n "$bin" && -f "$dir/PG_VERSION" ]] && as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1
  ;;
stop)
  mode=${3:-fast}
  [[ "$mode" == fast || "$mode" == immediate ]] || { echo "$usage" >&2; exit 2; }
  bin=$(pg_bindir)
  if [[ -n "$bin" && -f "$dir/PG_VERSION" ]]; then
    as_owner "$bin/pg_ctl" -D "$dir" -m "$mode" -w stop >/dev/null 2>&1 || true
  fi
  ;;
standby)
  port=${3:?port required}
  primary=${4:?primary port required}
  bin=$(ensure_installed)
  super=$( [[ $(id -u) -eq 0 ]] && echo postgres || id -un )
  name=relay_standby
  if [[ ! -f "$dir/PG_VERSION" ]]; then
    mkdir -p "$dir"
    if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$dir"; fi
    chmod 700 "$dir"
    # -R writes standby.signal and primary_conninfo (with our
    # application_name, which synchronous_standby_names refers to).
    as_owner "$bin/pg_basebackup" -d "host=127.0.0.1 port=$primary user=$super application_name=$name" \
      -D "$dir" -R -X stream -c fast >/dev/null 2> >(grep -v 'skipping special file' >&2 || true)
  fi
  if as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    log "already running in $dir"
  else
    pg_start
  fi
  psql_primary() { as_owner "$bin/psql" -h 127.0.0.1 -p "$primary" -U "$super" -d postgres -qtAc "$1"; }
  psql_primary "ALTER SYSTEM SET synchronous_standby_names = '$name'" >/dev/null
  psql_primary "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 300); do
    [[ $(psql_primary "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$name'") == sync ]] && break
    sleep 0.1
  done
  [[ $(psql_primary "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$name'") == sync ]] \
    || { log "the standby in $dir is not streaming synchronously after 30 s"; cat "$dir/server.log" >&2; exit 1; }
  echo "DATABASE_URL=postgres://$super@127.0.0.1:$primary,127.0.0.1:$port/relay?sslmode=disable&target_session_attrs=read-write"
  ;;
promote)
  bin=$(pg_bindir)
  as_owner "$bin/pg_ctl" -D "$dir" -w -t 60 promote >/dev/null
  ;;
*)
  echo "$usage" >&2; exit 2 ;;
esac
