// What every end-to-end test program shares: the report protocol with the
// harness (tests/e2e/harness.h).
//
// A program is started as `PROGRAM OUTDIR`. It appends to OUTDIR/report:
// "ready\n" once its state is set up, then, when SIGUSR1 arrives, exactly one
// verdict line, "OK <details>\n" or "FAIL <what is wrong>\n", and exits 0 or 1.
// The SIGUSR1 handler only sets a flag; the program's own loop notices it and
// checks its state from the inside. After a restore the handler is still
// installed, so the same signal asks a restored program for its verdict.
//
// Programs are single-threaded but for threads.cc (and refused.cc, which holds
// what a dump must refuse).
#ifndef CRPP_TESTS_E2E_PROGRAMS_COMMON_H_
#define CRPP_TESTS_E2E_PROGRAMS_COMMON_H_

#include <signal.h>

#include <cstdint>
#include <string>

namespace crpp::e2e {

// Set by the SIGUSR1 handler.
extern volatile sig_atomic_t g_verify_requested;

// Checks the command line, opens OUTDIR/report for appending and installs the
// SIGUSR1 handler. Exits with status 2 on a usage or setup error.
// Returns OUTDIR.
std::string Setup(int argc, char** argv, const char* name);

// The fd of the report, for programs that write "ready" themselves.
int ReportFd();

// Appends "ready\n" to the report.
void Ready();

// Exits with status 2 after printing "NAME: WHAT: strerror(errno)" to stderr:
// for setup steps that must not fail.
[[noreturn]] void Die(const char* what);

// One line from FD, without its newline (what came before EOF at EOF).
std::string ReadLine(int fd);

// Writes LINE and a newline to FD; exits with status 3 if it cannot.
void WriteLine(int fd, const std::string& line);

// Sleeps MS milliseconds with nanosleep; a signal may cut it short.
void SleepMs(int ms);

// Sleeps in steps of STEP_MS milliseconds until SIGUSR1 asks for the
// verdict (g_verify_requested). Returns how many steps it slept: a sign in
// the verdict's notes that the program ran meanwhile.
uint64_t WaitForVerify(int step_ms = 10);

// Milliseconds of CLOCK_MONOTONIC.
int64_t NowMs();

// Collects what a verification finds wrong.
class Verdict {
 public:
  // Notes a failure described by the printf-style FMT unless OK holds.
  // Returns OK.
  bool Expect(bool ok, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
  // Appends details shown on success ("counter=12 ...").
  void Note(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  bool ok() const { return failures_.empty(); }
  const std::string& failures() const { return failures_; }
  const std::string& notes() const { return notes_; }
  // Appends the verdict line to the report and exits 0 (OK) or 1 (FAIL).
  [[noreturn]] void Finish() const;

 private:
  std::string failures_;
  std::string notes_;
};

// A deterministic 64-bit generator (splitmix64): fills test data from a seed.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

// 8 bytes from /dev/urandom (exits on failure).
uint64_t UrandomSeed();

// The protection column ("rw-p") of the /proc/self/maps line that covers
// ADDR, or "" when no mapping covers it.
std::string MapsPerms(const void* addr);

}  // namespace crpp::e2e

#endif  // CRPP_TESTS_E2E_PROGRAMS_COMMON_H_
