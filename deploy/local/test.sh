#!/usr/bin/env bash
# Runs relay's whole test suite. Starts a throwaway PostgreSQL (installing it
# with apt-get when missing) unless TEST_DATABASE_URL is already set; tests
# then never skip for lack of a database (RELAY_REQUIRE_DB=1).
#
#   deploy/local/test.sh                 all packages, with the race detector
#   deploy/local/test.sh ./relay/store/  some packages; extra go test flags may follow
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ -z "${TEST_DATABASE_URL:-}" ]]; then
  dir=${RELAY_TEST_PGDATA:-${TMPDIR:-/tmp}/relay-test-pg}
  port=${RELAY_TEST_PGPORT:-55433}
  # Stop it afterwards only if this run started it (another run may share it).
  if ! deploy/local/postgres.sh status "$dir"; then
    trap 'deploy/local/postgres.sh stop "$dir"' EXIT
  fi
  line=$(deploy/local/postgres.sh start "$dir" "$port")
  export TEST_DATABASE_URL=${line#DATABASE_URL=}
fi
export RELAY_REQUIRE_DB=1

if [[ $# -eq 0 ]]; then set -- ./...; fi
go test -race -count=1 -timeout 20m "$@"
