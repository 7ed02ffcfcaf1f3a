#!/bin/bash
# Decodes the fixture dump with our crit and with CRIU's own crit (Debian's
# criu package, installed by tools/setup.sh) and requires identical JSON, plain
# and pretty, and identical `x` explorer output. Differences that are CRIU
# version changes, not ours, are listed and checked explicitly below.
set -u
runfiles="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-crpp}"
ours="$runfiles/tools/crit/crit"
make_fixtures="$runfiles/tests/images/make_fixtures"
criu_crit=/usr/bin/crit
dir="${TEST_TMPDIR:-/tmp}/fixtures"
if [ ! -x "$criu_crit" ]; then
  echo "FAIL: $criu_crit not found: run tools/setup.sh (it installs Debian's criu package)"
  exit 1
fi
rm -rf "$dir"; mkdir -p "$dir"
"$make_fixtures" "$dir" || exit 1
fail=0
checked=0
for img in "$dir"/*.img; do
  name=$(basename "$img")
  case "$name" in pages-*) continue ;; esac
  for mode in "" "--pretty"; do
    a=$("$ours" decode $mode -i "$img") || { echo "FAIL ours: $name $mode"; fail=1; continue; }
    b=$("$criu_crit" decode $mode -i "$img" 2>&1) || { echo "FAIL criu crit: $name $mode: $b"; fail=1; continue; }
    if [[ "$name" == pagemap-* ]]; then
      # CRIU 4.x renamed pagemap_entry field 2 to compat_nr_pages and added
      # nr_pages (field 5); the crit of CRIU 3.17 on this machine predates it.
      if [ -z "$mode" ]; then
        a=$(sed -E 's/"compat_nr_pages": ([0-9]+), ("flags": [0-9]+), "nr_pages": [0-9]+/"nr_pages": \1, \2/g' <<<"$a")
      else  # one field per line: compare without the count lines and line-end commas
        a=$(grep -v '_pages"' <<<"$a" | sed 's/,$//')
        b=$(grep -v '"nr_pages"' <<<"$b" | sed 's/,$//')
      fi
    fi
    if [ "$a" != "$b" ]; then
      echo "FAIL $name $mode differs:"; diff <(echo "$a") <(echo "$b") | head -20; fail=1
    fi
    checked=$((checked + 1))
  done
done
for x in ps fds mems rss; do
  a=$("$ours" x "$dir" $x) || { echo "FAIL ours: x $x"; fail=1; continue; }
  b=$("$criu_crit" x "$dir" $x 2>&1)
  [ "$a" == "$b" ] || { echo "FAIL x $x differs:"; diff <(echo "$a") <(echo "$b") | head; fail=1; }
  checked=$((checked + 1))
done
# CRIU's crit must also decode what our crit encodes from its JSON.
"$criu_crit" decode -i "$dir/mm-100.img" -o "$dir/mm.json" || fail=1
"$ours" encode -i "$dir/mm.json" -o "$dir/mm-re.img" || fail=1
cmp "$dir/mm-100.img" "$dir/mm-re.img" || { echo "FAIL: encode of CRIU crit's JSON differs"; fail=1; }
echo "$checked comparisons"
[ $checked -ge 40 ] || { echo "FAIL: too few comparisons"; fail=1; }
exit $fail
