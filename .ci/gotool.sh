#!/usr/bin/env bash
# Prints the path of a Go tool at a pinned version, building it from its
# module first when the cache does not have it yet. The tools CI and the
# developer scripts use (promtool, staticcheck) come through here.
#
#   bin=$(.ci/gotool.sh NAME PACKAGE VERSION [CACHE_KEY])
#   .ci/gotool.sh promtool github.com/prometheus/prometheus/cmd/promtool v0.316.0
#
# The binary lives in ${XDG_CACHE_HOME:-$HOME/.cache}/relay-tools/NAME-VERSION
# (plus CACHE_KEY, e.g. the Go version for a tool that must be rebuilt with a
# new toolchain; RELAY_TOOLS_DIR overrides the folder), so CI and developers
# build it once and reuse it afterwards.
set -euo pipefail
name=$1 pkg=$2 version=$3 key=${4:-}
dir="${RELAY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/relay-tools}/$name-$version$key"
bin="$dir/$name"

if [[ ! -x "$bin" ]]; then
  echo "building $name $version into $dir (once)" >&2
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # Outside any module, so relay's go.mod neither constrains nor records it.
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -mod=mod" go install "$pkg@$version") >&2
  # Rename last: an interrupted build never leaves a binary that looks done.
  mv "$tmp/$name" "$bin"
  rm -rf "$tmp"
  trap - EXIT
fi
echo "$bin"
