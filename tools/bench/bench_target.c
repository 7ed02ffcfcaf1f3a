// bench_target: the program //tools:bench checkpoints and restores.
//
//   bench_target MIB
//
// Maps MIB MiB of private anonymous memory, fills it with xorshift64 data (one
// step per 8 bytes: no page is zero, so every page is dumped), and writes
// "ready CHECKSUM\n" to stdout. Then it sleeps until SIGUSR1 arrives,
// recomputes the checksum from the memory and writes "OK CHECKSUM\n" (exit 0)
// or "FAIL CHECKSUM expected CHECKSUM\n" (exit 1). Single-threaded.
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_verify = 0;

static void OnUsr1(int sig) {
  (void)sig;
  g_verify = 1;
}

// Depends on every word and on its position (a page moved elsewhere shows).
static uint64_t Checksum(const uint64_t* words, size_t n) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += words[i] ^ (i * 0x9e3779b97f4a7c15ULL);
  return sum;
}

// One line in a single write().
static void Report(const char* line) {
  size_t len = strlen(line);
  if (write(STDOUT_FILENO, line, len) != (ssize_t)len) exit(3);
}

int main(int argc, char** argv) {
  char* end = NULL;
  unsigned long mib = argc == 2 ? strtoul(argv[1], &end, 10) : 0;
  if (argc != 2 || *end != '\0' || mib == 0) {
    fprintf(stderr, "usage: %s MIB\n", argv[0]);
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnUsr1;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGUSR1, &sa, NULL) != 0) return 2;

  const size_t bytes = (size_t)mib << 20;
  const size_t n = bytes / sizeof(uint64_t);
  uint64_t* words = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (words == MAP_FAILED) {
    perror("bench_target: mmap");
    return 2;
  }
  uint64_t x = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ 0x2545f4914f6cdd1dULL;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    words[i] = x;
  }
  const uint64_t expected = Checksum(words, n);
  char line[128];
  snprintf(line, sizeof line, "ready %016" PRIx64 "\n", expected);
  Report(line);

  while (!g_verify) {
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  const uint64_t actual = Checksum(words, n);
  if (actual != expected) {
    snprintf(line, sizeof line, "FAIL %016" PRIx64 " expected %016" PRIx64 "\n", actual, expected);
    Report(line);
    return 1;
  }
  snprintf(line, sizeof line, "OK %016" PRIx64 "\n", actual);
  Report(line);
  return 0;
}
