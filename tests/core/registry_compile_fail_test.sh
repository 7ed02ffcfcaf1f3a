#!/bin/bash
# Compiles each case in registry_bad/ and checks that the compiler rejects it
# with the message its "// EXPECT:" line names (and accepts the EXPECT-OK one).
set -u
root="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-crpp}"
cases_dir="$root/tests/core/registry_bad"
cxx="${CXX:-/usr/bin/g++}"
failures=0
count=0
for src in "$cases_dir"/*.cc; do
  count=$((count + 1))
  name=$(basename "$src")
  out=$("$cxx" -std=c++20 -fsyntax-only -I"$root" "$src" 2>&1)
  rc=$?
  if grep -q '^// EXPECT-OK' "$src"; then
    if [ $rc -ne 0 ]; then
      echo "FAIL $name: control case did not compile:"; echo "$out" | head -20
      failures=$((failures + 1))
    else
      echo "ok   $name compiles"
    fi
    continue
  fi
  want=$(sed -n 's|^// EXPECT: ||p' "$src")
  if [ $rc -eq 0 ]; then
    echo "FAIL $name: compiled, expected an error containing: $want"
    failures=$((failures + 1))
  elif ! grep -qF -- "$want" <<<"$out"; then
    echo "FAIL $name: rejected, but without: $want"; echo "$out" | grep -m5 error
    failures=$((failures + 1))
  else
    echo "ok   $name rejected: $want"
  fi
done
[ $count -ge 10 ] || { echo "FAIL: only $count cases found under $cases_dir"; exit 1; }
exit $failures
