#!/usr/bin/env bash
# Runs staticcheck at the version pinned below, building it from its Go
# module first when the cache does not have it yet. Arguments go to
# staticcheck; without any it checks ./... of the current directory's module.
#
#   .ci/staticcheck.sh
#   .ci/staticcheck.sh ./relay/render/
#   (cd deploy/kubernetes && ../../.ci/staticcheck.sh)
#
# The binary lives in ${XDG_CACHE_HOME:-$HOME/.cache}/relay-tools/, one folder
# per staticcheck and Go version: staticcheck must be built by a Go at least
# as new as the code it reads, so a new toolchain builds it again. The module
# version v0.8.2 is staticcheck 2026.2.2.
set -euo pipefail

version=v0.8.2
dir="${RELAY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/relay-tools}/staticcheck-$version-$(go env GOVERSION)"
bin="$dir/staticcheck"

if [[ ! -x "$bin" ]]; then
  echo "building staticcheck $version into $dir (once)" >&2
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # Outside any module, so relay's go.mod neither constrains nor records it.
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -mod=mod" \
    go install "honnef.co/go/tools/cmd/staticcheck@$version")
  # Rename last: an interrupted build never leaves a binary that looks done.
  mv "$tmp/staticcheck" "$bin"
  rm -rf "$tmp"
  trap - EXIT
fi
if [[ $# -eq 0 ]]; then set -- ./...; fi
exec "$bin" "$@"
