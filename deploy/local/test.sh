#!/usr/bin/env bash
# Runs relay's whole test suite. Starts a throwaway PostgreSQL (installing it
# with apt-get when missing) unless TEST_DATABASE_URL is already set; tests
# then never skip for lack of a database (RELAY_REQUIRE_DB=1). Installs Debian's
# chromium the same way for the console's browser tests (RELAY_REQUIRE_BROWSER=1);
# their screenshots go to $RELAY_TEST_ARTIFACTS when set.
#
#   deploy/local/test.sh                 all packages, with the race detector, then the
#                                        Kubernetes manifests' tests (deploy/kubernetes, a
#                                        module of its own)
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

# The console's browser tests (relay/e2e) drive Debian's chromium; install it
# like postgresql when it is missing, and make its absence a failure.
if ! command -v chromium >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]]; then
    echo "test.sh: installing chromium with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq chromium >&2
  else
    echo "test.sh: chromium not found; install it: sudo apt-get install -y chromium" >&2
    exit 1
  fi
fi
export RELAY_REQUIRE_BROWSER=1

if [[ $# -gt 0 ]]; then
  go test -race -count=1 -timeout 20m "$@"
else
  go test -race -count=1 -timeout 20m ./...
  # The manifests' tests need no database and no race detector; their
  # module keeps the Kubernetes API types out of relay's.
  (cd deploy/kubernetes && go test -count=1 -timeout 10m ./...)
fi
