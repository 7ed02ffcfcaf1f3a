#!/bin/bash
# Puts criu, criu-ns, crit and pdum-criu side by side in PREFIX/bin
# (criu-ns runs the criu beside it):
#   bazel run //tools:install -- PREFIX        (e.g. /usr/local, or ~/.local)
# A relative PREFIX is the workspace's (where bazel run was typed).
set -euo pipefail
if [[ $# -ne 1 || "$1" == -* ]]; then
  echo "usage: bazel run //tools:install -- PREFIX" >&2
  exit 2
fi
prefix="$1"
if [[ "$prefix" != /* ]]; then
  prefix="${BUILD_WORKING_DIRECTORY:-$PWD}/$prefix"
fi
here="$(cd "$(dirname "$0")" && pwd)"
runfiles="${RUNFILES_DIR:-$0.runfiles}"
find_binary() {
  local path
  for path in "$runfiles/_main/$1" "$runfiles/crpp/$1" "$here/../../$1"; do
    if [[ -x "$path" ]]; then
      echo "$path"
      return 0
    fi
  done
  echo "install: $1 not found in the runfiles" >&2
  return 1
}
mkdir -p "$prefix/bin"
for pair in "tools/criu/criu:criu" "tools/criu_ns/criu-ns:criu-ns" "tools/crit/crit:crit" \
  "tools/pdum/pdum-criu:pdum-criu"; do
  src="$(find_binary "${pair%%:*}")"
  install -m 0755 "$src" "$prefix/bin/${pair##*:}"
  echo "installed $prefix/bin/${pair##*:}"
done
