#!/usr/bin/env bash
# Throwaway PostgreSQL for development, tests and benchmarks.
#
#   deploy/local/postgres.sh start DIR PORT   initdb (first time) and start a cluster in DIR on
#                                            127.0.0.1:PORT; prints DATABASE_URL=... on stdout
#   deploy/local/postgres.sh stop DIR         stop it (the data stays in DIR)
#   deploy/local/postgres.sh status DIR       exit 0 when it runs
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

cmd=${1:-}
dir=${2:-}
[[ -n "$cmd" && -n "$dir" ]] || { echo "usage: $0 start DIR PORT | stop DIR | status DIR" >&2; exit 2; }

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
    as_owner "$bin/pg_ctl" -D "$dir" -w -t 60 -l "$dir/server.log" \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=300 -c shared_buffers=256MB" \
      start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
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
  bin=$(pg_bindir)
  if [[ -n "$bin" && -f "$dir/PG_VERSION" ]]; then
    as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
  fi
  ;;
*)
  echo "usage: $0 start DIR PORT | stop DIR | status DIR" >&2; exit 2 ;;
esac
