#!/usr/bin/env bash
# Runs the chaos tests. go.mod must require github.com/anishathalye/porcupine;
# while it does not, this script runs `go test` with a temporary copy of
# go.mod/go.sum that adds it (-modfile), leaving the repository untouched.
#   test/chaos/run.sh -run TestChaosQuick -v
#   test/chaos/run.sh -run TestChaosLong -duration 30m -timeout 0 -v
set -euo pipefail
cd "$(dirname "$0")/../.."
args=()
if ! grep -q 'github.com/anishathalye/porcupine' go.mod; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  { cat go.mod; printf '\nrequire github.com/anishathalye/porcupine v1.3.1\n'; } > "$tmp/go.mod"
  cp go.sum "$tmp/go.sum"
  cat >> "$tmp/go.sum" <<'SUM'
github.com/anishathalye/porcupine v1.3.1 h1:fBZ4/NGNPnIDdd6xNtrNk9/GiEQ0L4FO5+scINN+t0E=
github.com/anishathalye/porcupine v1.3.1/go.mod h1:WM0SsFjWNl2Y4BqHr/E/ll2yY1GY1jqn+W7Z/84Zoog=
SUM
  args+=(-modfile="$tmp/go.mod")
fi
go test "${args[@]}" -tags chaos -count=1 -timeout 30m ./test/chaos "$@"
