#!/usr/bin/env bash
# Runs promtool at the version pinned below, building it from the Prometheus
# Go module first when the cache does not have it yet. With no arguments it
# prints the binary's path instead.
#
#   deploy/prometheus/promtool.sh check rules deploy/prometheus/relay-rules.yml
#   deploy/prometheus/promtool.sh test rules deploy/prometheus/relay-rules.test.yml
#   promtool=$(deploy/prometheus/promtool.sh)
#
# The binary lives in ${XDG_CACHE_HOME:-$HOME/.cache}/relay-tools/, one folder
# per version, so CI and developers build it once (a few minutes on two cores)
# and reuse it afterwards. The Prometheus module's tags put the major version in
# the minor field: v0.316.0 is Prometheus 3.16.0.
set -euo pipefail

version=v0.316.0
dir="${RELAY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/relay-tools}/promtool-$version"
bin="$dir/promtool"

if [[ ! -x "$bin" ]]; then
  echo "building promtool $version into $dir (once)" >&2
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # Outside any module, so relay's go.mod neither constrains nor records it.
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -mod=mod" \
    go install "github.com/prometheus/prometheus/cmd/promtool@$version")
  # Rename last: an interrupted build never leaves a binary that looks done.
  mv "$tmp/promtool" "$bin"
  rm -rf "$tmp"
  trap - EXIT
fi
if [[ $# -eq 0 ]]; then echo "$bin"; else exec "$bin" "$@"; fi
