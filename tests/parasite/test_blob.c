/*
 * A tiny blob for blob_test: each entry exercises one thing the build and
 * the loader must get right.
 */
#include "parasite/include/crpp_syscall.h"

/* Plain code: no relocations needed. */
long test_add(long a, long b) { return a + b; }

static long op_add(long a, long b) { return a + b; }
static long op_sub(long a, long b) { return a - b; }
static long op_mul(long a, long b) { return a * b; }

/* A table of function pointers holds absolute addresses: each entry is an
   R_X86_64_RELATIVE relocation that the loader must apply. */
static long (*const kOps[])(long, long) = {op_add, op_sub, op_mul};

long test_apply(unsigned op, long a, long b) {
  if (op >= sizeof(kOps) / sizeof(kOps[0])) return -1;
  return kOps[op](a, b);
}

/* A writable pointer to a string: gcc cannot fold it into a lea, so it is
   another relocated word, in .data this time. */
const char* test_greeting_ptr = "hello from a blob\n";

const char* test_greeting(void) { return test_greeting_ptr; }

/* A raw write(2) through the stubs. */
long test_write(int fd, const char* buf, unsigned long len) { return crpp_write(fd, buf, len); }

/* bss: must read as zeros whatever the memory held before loading. */
long test_bss_words[64]; /* external: gcc cannot fold the sum */

long test_bss_sum(void) {
  long sum = 0;
  for (unsigned i = 0; i < sizeof(test_bss_words) / sizeof(test_bss_words[0]); i++)
    sum += test_bss_words[i];
  return sum;
}
