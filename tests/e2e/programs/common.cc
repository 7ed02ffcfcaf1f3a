#include "tests/e2e/programs/common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace crpp::e2e {

volatile sig_atomic_t g_verify_requested = 0;

namespace {

int g_report_fd = -1;
const char* g_name = "program";

void OnSigusr1(int) { g_verify_requested = 1; }

// Writes all of TEXT to FD in one write() when it can, so that a line is
// never interleaved with another writer's.
void WriteAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) Die("write to the report");
    done += static_cast<size_t>(n);
  }
}

void AppendF(std::string& out, const char* fmt, va_list args) {
  char buf[1024];
  vsnprintf(buf, sizeof(buf), fmt, args);
  if (!out.empty()) out += "; ";
  out += buf;
}

}  // namespace

std::string Setup(int argc, char** argv, const char* name) {
  g_name = name;
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    exit(2);
  }
  std::string dir = argv[1];
  std::string report = dir + "/report";
  g_report_fd = open(report.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (g_report_fd < 0) Die(report.c_str());
  struct sigaction sa = {};
  sa.sa_handler = OnSigusr1;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGUSR1, &sa, nullptr) != 0) Die("sigaction(SIGUSR1)");
  return dir;
}

int ReportFd() { return g_report_fd; }

std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

void WriteLine(int fd, const std::string& line) {
  std::string l = line + "\n";
  if (write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) _exit(3);
}

void Ready() { WriteAll(g_report_fd, "ready\n"); }

void Die(const char* what) {
  fprintf(stderr, "%s: %s: %s\n", g_name, what, strerror(errno));
  exit(2);
}

void SleepMs(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

uint64_t WaitForVerify(int step_ms) {
  uint64_t steps = 0;
  while (!g_verify_requested) {
    ++steps;
    SleepMs(step_ms);
  }
  return steps;
}

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool Verdict::Expect(bool ok, const char* fmt, ...) {
  if (ok) return true;
  va_list args;
  va_start(args, fmt);
  AppendF(failures_, fmt, args);
  va_end(args);
  return false;
}

void Verdict::Note(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  AppendF(notes_, fmt, args);
  va_end(args);
}

void Verdict::Finish() const {
  std::string line = ok() ? "OK " + notes_ : "FAIL " + failures_;
  for (char& c : line) {
    if (c == '\n') c = ' ';
  }
  WriteAll(g_report_fd, line + "\n");
  exit(ok() ? 0 : 1);
}

uint64_t UrandomSeed() {
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  uint64_t seed = 0;
  if (fd < 0 || read(fd, &seed, sizeof(seed)) != sizeof(seed)) Die("/dev/urandom");
  close(fd);
  return seed;
}

std::string MapsPerms(const void* addr) {
  FILE* f = fopen("/proc/self/maps", "re");
  if (f == nullptr) return "";
  auto a = reinterpret_cast<uintptr_t>(addr);
  char line[4096];
  std::string perms;
  while (fgets(line, sizeof(line), f) != nullptr) {
    uintptr_t start = 0;
    uintptr_t end = 0;
    char p[8] = {0};
    if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %4s", &start, &end, p) != 3) continue;
    if (a >= start && a < end) {
      perms = p;
      break;
    }
  }
  fclose(f);
  return perms;
}

}  // namespace crpp::e2e
