#!/bin/bash
# blob2h as the build runs it: a bad blob must fail the step (exit 1) with the
# reason on stderr and write no header; a good one must produce the header.
set -u
root="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-crpp}"
blob2h="$root/parasite/tools/blob2h"
dir="$root/tests/parasite"
out="${TEST_TMPDIR:-/tmp}/blob2h_test"
mkdir -p "$out"
failures=0

refuse() {  # refuse FILE EXPECTED_TEXT
  local err rc
  rm -f "$out/bad.h"
  err=$("$blob2h" --name=bad --entry=copy_name "$dir/$1" "$out/bad.h" 2>&1 >/dev/null)
  rc=$?
  if [ $rc -ne 1 ]; then
    echo "FAIL $1: exit $rc, want 1"; failures=$((failures + 1))
  elif ! grep -qF -- "$2" <<<"$err"; then
    echo "FAIL $1: message lacks '$2':"; echo "$err"; failures=$((failures + 1))
  elif [ -e "$out/bad.h" ]; then
    echo "FAIL $1: a header was written"; failures=$((failures + 1))
  else
    echo "ok   $1 refused: $2"
  fi
}

refuse bad_undefined.elf "undefined symbol memcpy"
refuse bad_undefined_pie.elf "has a PLT"
refuse bad_libc.elf "PT_INTERP"
refuse bad_reloc.elf "unsupported relocation R_X86_64_64"
refuse bad_object.o "ET_REL"

if "$blob2h" --name=good --entry=test_add "$dir/test_blob.elf" "$out/good.h" &&
  grep -q "inline constexpr std::size_t kEntry_test_add = 0x" "$out/good.h"; then
  echo "ok   test_blob.elf accepted"
else
  echo "FAIL test_blob.elf was not turned into a header"; failures=$((failures + 1))
fi

if "$blob2h" --name=not-an-identifier "$dir/test_blob.elf" "$out/x.h" 2>/dev/null; then
  echo "FAIL a bad --name was accepted"; failures=$((failures + 1))
fi
exit $failures
