#!/usr/bin/env bash
# Runs promtool at the version pinned below, built once into the tools cache
# by .ci/gotool.sh (a few minutes on two cores the first time). With no
# arguments it prints the binary's path instead.
#
#   deploy/prometheus/promtool.sh check rules deploy/prometheus/relay-rules.yml
#   deploy/prometheus/promtool.sh test rules deploy/prometheus/relay-rules.test.yml
#   promtool=$(deploy/prometheus/promtool.sh)
#
# The Prometheus module's tags put the major version in the minor field:
# v0.316.0 is Prometheus 3.16.0.
set -euo pipefail
bin=$("$(dirname "$0")/../../.ci/gotool.sh" promtool github.com/prometheus/prometheus/cmd/promtool v0.316.0)
if [[ $# -eq 0 ]]; then echo "$bin"; else exec "$bin" "$@"; fi
