#!/bin/bash
# dump --display-stats and the stats-dump image agree with the pages image:
# pages written * 4096 == size of pages-1.img; restore writes stats-restore.
set -u
runfiles="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-crpp}"
criu="$runfiles/tools/criu/criu"
crit="$runfiles/tools/crit/crit"
tmp="${TEST_TMPDIR:-/tmp}/stats"
rm -rf "$tmp"; mkdir -p "$tmp/img"
fail() { echo "FAIL: $*"; [ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null; exit 1; }
setsid /bin/sleep 1000 </dev/null >/dev/null 2>&1 &
pid=$!
sleep 0.2
out=$("$criu" dump -t "$pid" -D "$tmp/img" -R --display-stats -o dump.log) || fail "dump: $out"
written=$(sed -n 's/^Memory pages written: \([0-9]*\).*/\1/p' <<<"$out")
size=$(stat -c %s "$tmp/img/pages-1.img")
[ -n "$written" ] || fail "no 'Memory pages written' line in: $out"
[ "$((written * 4096))" -eq "$size" ] || fail "$written pages written but pages-1.img has $size bytes"
img_written=$("$crit" decode -i "$tmp/img/stats-dump" | sed -n 's/.*"pages_written": \([0-9]*\).*/\1/p')
[ "$img_written" = "$written" ] || fail "stats-dump says $img_written pages, --display-stats $written"
kill -0 "$pid" || fail "dump -R did not leave the task running"
kill -9 "$pid"; wait "$pid" 2>/dev/null
out=$("$criu" restore -D "$tmp/img" -d --pidfile "$tmp/img/rpid" --display-stats -o r.log) \
  || fail "restore: $out"
rpid=$(cat "$tmp/img/rpid")
[ "$rpid" = "$pid" ] || fail "restored as $rpid, not $pid"
pid=$rpid
restored=$(sed -n 's/^Memory pages restored: \([0-9]*\).*/\1/p' <<<"$out")
[ "$restored" = "$written" ] || fail "$restored pages restored, $written written"
grep -q '"pages_restored"' <("$crit" decode -i "$tmp/img/stats-restore") || fail "no stats-restore"
kill -9 "$pid"
echo "stats agree: $written pages, $size bytes"
