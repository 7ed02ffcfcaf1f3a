// pipeline: producer | filter | consumer, three children of the root, with
// data in flight in both pipes at any time.
//   producer writes records "%08u\n" (0, 1, 2, ...) as fast as the pipe
//            takes them (a 128 KiB pipe, always full);
//   filter   reads them and writes "%09u\n" of twice the number;
//   consumer reads those slowly (1 ms per 16 records) and checks that every
//            number comes, once and in order; on SIGUSR2 it writes
//            "count=N error=..." to the root through a third pipe
//            (non-blocking at the root's end) and exits.
// Verdict (root): the consumer saw an unbroken sequence that went on after
// "ready"; the pipes kept their size and O_NONBLOCK; everyone kept its pid.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>

#include "tests/e2e/programs/common.h"

namespace {

volatile sig_atomic_t g_report = 0;

void OnUsr2(int) { g_report = 1; }

bool ReadExactly(int fd, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

bool WriteExactly(int fd, const char* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(fd, buf + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    done += static_cast<size_t>(w);
  }
  return true;
}

void Producer(int, int out) {
  char rec[16];
  for (uint32_t n = 0;; ++n) {
    snprintf(rec, sizeof rec, "%08u\n", n);
    if (!WriteExactly(out, rec, 9)) _exit(3);
  }
}

void Filter(int in, int out) {
  char rec[16], res[16];
  for (;;) {
    if (!ReadExactly(in, rec, 9)) _exit(3);
    snprintf(res, sizeof res, "%09u\n", 2 * static_cast<uint32_t>(atol(rec)));
    if (!WriteExactly(out, res, 10)) _exit(3);
  }
}

void Consumer(int in, int report) {
  struct sigaction sa {};
  sa.sa_handler = OnUsr2;
  sigaction(SIGUSR2, &sa, nullptr);
  uint32_t expected = 0;
  std::string error;
  char rec[16];
  while (!g_report) {
    if (!ReadExactly(in, rec, 10)) {
      if (g_report) break;
      error = "read failed";
      break;
    }
    rec[10] = 0;
    uint32_t got = static_cast<uint32_t>(atol(rec));
    if (error.empty() && (got != 2 * expected || rec[9] != '\n')) {
      error = "record " + std::to_string(expected) + " is \"" + std::string(rec, 9) + "\"";
    }
    ++expected;
    if (expected % 16 == 0) crpp::e2e::SleepMs(1);
  }
  std::string line = "count=" + std::to_string(expected) + " error=" + error + "\n";
  WriteExactly(report, line.data(), line.size());
  _exit(error.empty() ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
  crpp::e2e::Setup(argc, argv, "pipeline");
  int p1[2], p2[2], rep[2];
  if (pipe(p1) != 0 || pipe(p2) != 0 || pipe(rep) != 0) crpp::e2e::Die("pipe");
  if (fcntl(p1[1], F_SETPIPE_SZ, 128 * 1024) < 0) crpp::e2e::Die("F_SETPIPE_SZ");
  if (fcntl(rep[0], F_SETFL, O_NONBLOCK) != 0) crpp::e2e::Die("O_NONBLOCK");
  // Each child keeps only its own ends (close the others after the fork).
  pid_t producer = fork();
  if (producer == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int fd : {p1[0], p2[0], p2[1], rep[0], rep[1]}) close(fd);
    Producer(-1, p1[1]);
  }
  pid_t filter = fork();
  if (filter == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int fd : {p1[1], p2[0], rep[0], rep[1]}) close(fd);
    Filter(p1[0], p2[1]);
  }
  pid_t consumer = fork();
  if (consumer == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int fd : {p1[0], p1[1], p2[1], rep[0]}) close(fd);
    Consumer(p2[0], rep[1]);
  }
  for (int fd : {p1[0], p1[1], p2[0], p2[1], rep[1]}) close(fd);
  if (producer < 0 || filter < 0 || consumer < 0) crpp::e2e::Die("fork");
  crpp::e2e::SleepMs(100);  // let the pipes fill up
  crpp::e2e::Ready();
  crpp::e2e::WaitForVerify();

  crpp::e2e::Verdict v;
  v.Expect((fcntl(rep[0], F_GETFL) & O_NONBLOCK) != 0, "the report pipe lost O_NONBLOCK");
  kill(consumer, SIGUSR2);
  std::string line;
  for (int i = 0; i < 1000 && line.find('\n') == std::string::npos; ++i) {
    char buf[128];
    ssize_t n = read(rep[0], buf, sizeof buf);
    if (n > 0) line.append(buf, static_cast<size_t>(n));
    if (n <= 0) crpp::e2e::SleepMs(5);
  }
  int st = 0;
  v.Expect(waitpid(consumer, &st, 0) == consumer && WIFEXITED(st) && WEXITSTATUS(st) == 0,
           "the consumer did not exit with status 0 (%s)", line.c_str());
  uint64_t count = 0;
  sscanf(line.c_str(), "count=%" SCNu64, &count);
  v.Expect(line.find("error=\n") != std::string::npos, "consumer: %s", line.c_str());
  v.Expect(count > 1000, "the consumer saw only %" PRIu64 " records", count);
  for (pid_t p : {producer, filter}) {
    v.Expect(kill(p, 0) == 0, "pid %d is gone", p);
    kill(p, SIGKILL);
    waitpid(p, &st, 0);
  }
  if (!line.empty() && line.back() == '\n') line.pop_back();
  v.Note("%s", line.c_str());
  v.Finish();
}
