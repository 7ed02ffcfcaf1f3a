/*
 * memcpy, memmove, memset, memcmp for freestanding blobs. Written with the
 * string instructions rather than C loops: gcc recognises a byte-copy loop
 * and may turn it back into a call to memcpy, which here would be this very
 * function (the macro also passes -fno-tree-loop-distribute-patterns, but
 * the asm makes that impossible regardless of flags). `rep movsb`/`stosb` are
 * fast on every CPU with ERMS, and blobs copy little anyway.
 */
#include "parasite/include/crpp_string.h"

void* memcpy(void* dest, const void* src, size_t n) {
  void* d = dest;
  __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
  return dest;
}

void* memmove(void* dest, const void* src, size_t n) {
  unsigned char* d = dest;
  const unsigned char* s = src;
  if (d <= s || d >= s + n) return memcpy(dest, src, n);
  /* The tail of src overlaps the head of dest: copy backwards, with the
     direction flag set only for this instruction (the ABI wants it clear). */
  d += n - 1;
  s += n - 1;
  __asm__ volatile("std\n\trep movsb\n\tcld" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
  return dest;
}

void* memset(void* dest, int c, size_t n) {
  void* d = dest;
  __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
  return dest;
}

int memcmp(const void* a, const void* b, size_t n) {
  const unsigned char* x = a;
  const unsigned char* y = b;
  for (size_t i = 0; i < n; i++) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}
