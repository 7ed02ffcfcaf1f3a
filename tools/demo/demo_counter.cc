// demo_counter: the program //tools:demo checkpoints and restores.
//
// It keeps 4 MiB of pseudo-random data on the heap and the checksum it took of
// them at start. Every 100 ms it adds one to a counter, recomputes the
// checksum and prints one line to stdout (a log file):
//
//   count=12 pid=4242 checksum=5f0c2b8e1a9d3c47
//
// A line whose checksum differs from the one taken at start ends with
// "MISMATCH" and the program exits 1: a restore that lost or changed a page
// shows at once. SIGTERM ends it with "stopped at count=N" and status 0.
// Single-threaded; everything it holds is what crpp can dump.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr size_t kWords = (size_t{4} << 20) / sizeof(uint64_t);
constexpr long kTickNs = 100'000'000;

volatile sig_atomic_t g_stop = 0;

void OnTerm(int) { g_stop = 1; }

// One line to stdout in a single write(), so no line is ever split.
void Print(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void Print(const char* fmt, ...) {
  char line[256];
  va_list args;
  va_start(args, fmt);
  const int n = vsnprintf(line, sizeof line, fmt, args);
  va_end(args);
  if (n > 0) (void)!write(STDOUT_FILENO, line, static_cast<size_t>(n));
}

// Depends on every word and on its position.
uint64_t Checksum(const uint64_t* words) {
  uint64_t sum = 0;
  for (size_t i = 0; i < kWords; ++i) sum += words[i] ^ (i * 0x9e3779b97f4a7c15ULL);
  return sum;
}

}  // namespace

int main() {
  struct sigaction sa = {};
  sa.sa_handler = OnTerm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);

  auto* words = static_cast<uint64_t*>(malloc(kWords * sizeof(uint64_t)));
  if (words == nullptr) {
    fprintf(stderr, "demo_counter: out of memory\n");
    return 2;
  }
  uint64_t x = static_cast<uint64_t>(getpid()) * 0x2545f4914f6cdd1dULL | 1;
  for (size_t i = 0; i < kWords; ++i) {  // xorshift64
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    words[i] = x;
  }
  const uint64_t expected = Checksum(words);
  Print("started pid=%d checksum=%016" PRIx64 "\n", getpid(), expected);

  uint64_t count = 0;
  while (!g_stop) {
    // Relative sleeps: after a restore the next tick comes 100 ms later, not
    // in a burst that makes up for the time the program was not running.
    struct timespec tick = {0, kTickNs};
    nanosleep(&tick, nullptr);
    if (g_stop) break;
    ++count;
    const uint64_t sum = Checksum(words);
    if (sum != expected) {
      Print("count=%" PRIu64 " pid=%d checksum=%016" PRIx64 " MISMATCH (expected %016" PRIx64 ")\n",
            count, getpid(), sum, expected);
      return 1;
    }
    Print("count=%" PRIu64 " pid=%d checksum=%016" PRIx64 "\n", count, getpid(), sum);
  }
  Print("stopped at count=%" PRIu64 "\n", count);
  return 0;
}
