// bench_tree_target: the process tree //tools:bench --tree checkpoints.
//
//   bench_tree_target PROCS THREADS MIB
//
// The root forks PROCS-1 children (the tree has PROCS processes); every
// process starts THREADS-1 more threads (each sleeps in a loop), maps MIB MiB
// of private anonymous memory, fills it with xorshift64 data and checksums
// it. Children tell the root their checksum through a pipe; the root writes
// "ready SUM\n" to stdout (SUM: the checksums of all processes added up).
// On SIGUSR1 the root passes SIGUSR1 on to every child; each process
// recomputes its checksum from its memory, the children report through the
// pipe and exit, and the root writes "OK SUM\n" (exit 0) once every process
// found its data intact and every child ended well, or "FAIL ...\n" (exit 1).
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_verify = 0;

static void OnUsr1(int sig) {
  (void)sig;
  g_verify = 1;
}

static void* Sleeper(void* arg) {
  (void)arg;
  for (;;) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static uint64_t Checksum(const uint64_t* words, size_t n) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += words[i] ^ (i * 0x9e3779b97f4a7c15ULL);
  return sum;
}

// Fills the memory of process INDEX and returns its checksum.
static uint64_t Fill(uint64_t* words, size_t n, unsigned index) {
  uint64_t x = ((uint64_t)(index + 1) << 32) ^ (uint64_t)time(NULL) ^ 0x2545f4914f6cdd1dULL;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    words[i] = x;
  }
  return Checksum(words, n);
}

static void WriteLine(int fd, const char* line) {
  size_t len = strlen(line);
  if (write(fd, line, len) != (ssize_t)len) _exit(3);
}

static void WaitForVerify(void) {
  while (!g_verify) {
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s PROCS THREADS MIB\n", argv[0]);
    return 2;
  }
  const unsigned procs = (unsigned)strtoul(argv[1], NULL, 10);
  const unsigned threads = (unsigned)strtoul(argv[2], NULL, 10);
  const size_t mib = strtoul(argv[3], NULL, 10);
  if (procs == 0 || threads == 0 || mib == 0) {
    fprintf(stderr, "bench_tree_target: PROCS, THREADS and MIB must be positive\n");
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnUsr1;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGUSR1, &sa, NULL) != 0) return 2;
  int report[2];
  if (pipe(report) != 0) return 2;

  const pid_t root = getpid();
  unsigned index = 0;
  pid_t* children = calloc(procs, sizeof(pid_t));
  for (unsigned i = 1; i < procs; ++i) {
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != root) _exit(0);
      index = i;
      break;
    }
    children[i] = pid;
  }
  for (unsigned t = 1; t < threads; ++t) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, Sleeper, NULL) != 0) return 2;
  }
  const size_t bytes = mib << 20;
  const size_t n = bytes / sizeof(uint64_t);
  uint64_t* words = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (words == MAP_FAILED) return 2;
  const uint64_t expected = Fill(words, n, index);
  char line[128];

  if (index != 0) {
    // "C index checksum" at setup, "V index ok|bad" once asked to verify.
    snprintf(line, sizeof line, "C %u %016" PRIx64 "\n", index, expected);
    WriteLine(report[1], line);
    WaitForVerify();
    const int ok = Checksum(words, n) == expected;
    snprintf(line, sizeof line, "V %u %s\n", index, ok ? "ok" : "bad");
    WriteLine(report[1], line);
    _exit(ok ? 0 : 1);
  }

  // The root: gathers the children's lines from the pipe.
  FILE* in = fdopen(report[0], "r");
  uint64_t sum = expected;
  for (unsigned got = 1; got < procs; ++got) {
    unsigned who = 0;
    uint64_t checksum = 0;
    if (fscanf(in, " C %u %" SCNx64, &who, &checksum) != 2) return 2;
    sum += checksum;
  }
  snprintf(line, sizeof line, "ready %016" PRIx64 "\n", sum);
  WriteLine(STDOUT_FILENO, line);

  WaitForVerify();
  for (unsigned i = 1; i < procs; ++i) kill(children[i], SIGUSR1);
  unsigned bad = Checksum(words, n) == expected ? 0 : 1;
  for (unsigned got = 1; got < procs; ++got) {
    unsigned who = 0;
    char verdict[8] = {0};
    if (fscanf(in, " V %u %7s", &who, verdict) != 2) return 2;
    bad += strcmp(verdict, "ok") != 0;
  }
  for (unsigned i = 1; i < procs; ++i) {
    int status = 0;
    if (waitpid(children[i], &status, 0) != children[i] || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      ++bad;
    }
  }
  if (bad != 0) {
    snprintf(line, sizeof line, "FAIL %u of %u processes lost data or ended badly\n", bad, procs);
    WriteLine(STDOUT_FILENO, line);
    return 1;
  }
  snprintf(line, sizeof line, "OK %016" PRIx64 "\n", sum);
  WriteLine(STDOUT_FILENO, line);
  return 0;
}
