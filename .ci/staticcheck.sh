#!/usr/bin/env bash
# Runs staticcheck at the version pinned below, built once into the tools
# cache by .ci/gotool.sh. Arguments go to staticcheck; without any it checks
# ./... of the current directory's module.
#
#   .ci/staticcheck.sh
#   .ci/staticcheck.sh ./relay/render/
#   (cd deploy/kubernetes && ../../.ci/staticcheck.sh)
#
# staticcheck must be built by a Go at least as new as the code it reads, so
# the cache keeps one build per Go version. The module version v0.8.2 is
# staticcheck 2026.2.2.
set -euo pipefail
bin=$("$(dirname "$0")/gotool.sh" staticcheck honnef.co/go/tools/cmd/staticcheck v0.8.2 "-$(go env GOVERSION)")
if [[ $# -eq 0 ]]; then set -- ./...; fi
exec "$bin" "$@"
