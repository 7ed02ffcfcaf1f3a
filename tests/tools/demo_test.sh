#!/bin/bash
# //tools:demo from start to end, as `bazel run //tools:demo` runs it: it
# checkpoints and restores its counter with the library, says that the count
# went on, finishes within 10 s, and leaves no process and no directory.
set -u
runfiles="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-crpp}"
demo="$runfiles/tools/demo/demo"
tmp="${TEST_TMPDIR:-/tmp}/demo_test"
rm -rf "$tmp"; mkdir -p "$tmp"
out="$tmp/demo.out"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

start=$(date +%s%N)
# On a timeout, SIGTERM makes the demo kill its counter before it dies.
TEST_TMPDIR="$tmp" timeout -k 2 30 "$demo" >"$out" 2>&1
rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
cat "$out"

[ "$rc" -eq 0 ] || fail "the demo exited with status $rc"
[ "$elapsed_ms" -lt 10000 ] || fail "the demo took $elapsed_ms ms, more than 10 s"
for line in "crpp::Dump took" "crpp::Restore took" "runs again, as our child" \
  "no count lost or repeated, same pid, same checksum" "exit status 0; reaped" "Removed "; do
  grep -qF -- "$line" "$out" || fail "the output lacks '$line'"
done
# Each line the restored counter wrote carries the pid it had before.
pid=$(sed -n 's/^\[1\] started demo_counter as pid \([0-9]*\):.*/\1/p' "$out")
[ -n "$pid" ] || fail "the output names no pid"
if [ -n "$pid" ]; then
  grep -qE "^ +count=[0-9]+ pid=$pid checksum=" "$out" || fail "no line of the restored pid $pid"
  # Nothing left behind; a counter that still runs is killed here (by pid).
  if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" != "" ]; then
    case "$(readlink "/proc/$pid/exe")" in
      */demo_counter) kill -9 "$pid" ;;
    esac
    fail "pid $pid still exists after the demo"
  fi
fi
leftover=$(find "$tmp" -maxdepth 1 -name 'crpp-demo.*')
[ -z "$leftover" ] || fail "the demo left $leftover"

[ "$fails" -eq 0 ] || exit 1
echo "demo ok in $elapsed_ms ms"
