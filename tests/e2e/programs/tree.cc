// tree: a process tree of three levels, as a forking server has one.
//   root ── A (leads its own process group) ── B (grandchild, in A's group)
//        │                                  └─ Z (a zombie: exited with 7, not reaped)
//        └─ S (stopped by SIGSTOP)
// Root and A share one open file description (OUTDIR/shared, opened before
// the fork: one offset) and talk through two pipes.
// Verdict (root): S is still stopped; the root moves the shared offset by
// reading and tells A the offset it expects (through the pipe); A checks the
// offset, that Z is its zombie child with exit status 7, that B is alive, its
// child, in A's group, and answers through the other pipe; all pids and
// groups are the ones of the start.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "tests/e2e/programs/common.h"

namespace {

using crpp::e2e::ReadLine;
using crpp::e2e::WriteLine;

volatile uint64_t g_counter = 0;

char StateOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  size_t paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() ? '?' : line[paren + 2];
}

pid_t ParentOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  size_t paren = line.rfind(')');
  if (paren == std::string::npos) return -1;
  return static_cast<pid_t>(atoi(line.c_str() + paren + 4));
}

// A: forks B and Z, then waits for the root's question.
[[noreturn]] void RunA(int shared, int ctl, int res) {
  if (setpgid(0, 0) != 0) _exit(3);
  pid_t b = fork();
  if (b == 0) {
    for (;;) pause();
  }
  pid_t z = fork();
  if (z == 0) _exit(7);
  WriteLine(res, std::to_string(b) + " " + std::to_string(z));
  std::string q = ReadLine(ctl);  // "verify OFFSET"
  long expected = atol(q.c_str() + 7);
  std::string problems;
  auto expect = [&](bool ok, const std::string& what) {
    if (!ok) problems += (problems.empty() ? "" : "; ") + what;
  };
  off_t pos = lseek(shared, 0, SEEK_CUR);
  expect(pos == expected, "A's offset is " + std::to_string(pos) + ", the root's " + q.substr(7));
  expect(StateOf(z) == 'Z', std::string("Z is in state ") + StateOf(z));
  int st = 0;
  expect(waitpid(z, &st, 0) == z && WIFEXITED(st) && WEXITSTATUS(st) == 7,
         "Z did not end with exit status 7");
  expect(kill(b, 0) == 0 && ParentOf(b) == getpid(), "B is gone or not A's child");
  expect(getpgid(b) == getpid(), "B is in group " + std::to_string(getpgid(b)));
  kill(b, SIGKILL);
  expect(waitpid(b, &st, 0) == b && WIFSIGNALED(st), "B did not end by SIGKILL");
  WriteLine(res, problems.empty() ? "OK" : "FAIL " + problems);
  _exit(problems.empty() ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string out = crpp::e2e::Setup(argc, argv, "tree");
  const std::string path = out + "/shared";
  {
    std::string data(4096, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i & 0xff);
    std::ofstream(path, std::ios::binary) << data;
  }
  int shared = open(path.c_str(), O_RDONLY);
  char buf[16];
  if (shared < 0 || read(shared, buf, 10) != 10) crpp::e2e::Die("shared file");
  int ctl[2], res[2];
  if (pipe(ctl) != 0 || pipe(res) != 0) crpp::e2e::Die("pipe");
  const pid_t root = getpid();
  pid_t a = fork();
  if (a < 0) crpp::e2e::Die("fork");
  if (a == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != root) _exit(0);
    RunA(shared, ctl[0], res[1]);
  }
  setpgid(a, a);
  pid_t s = fork();
  if (s < 0) crpp::e2e::Die("fork");
  if (s == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    raise(SIGSTOP);
    for (;;) pause();
  }
  int st;
  if (waitpid(s, &st, WUNTRACED) != s || !WIFSTOPPED(st)) crpp::e2e::Die("S did not stop");
  std::string bz = ReadLine(res[0]);
  const pid_t b = static_cast<pid_t>(atoi(bz.c_str()));
  const pid_t z = static_cast<pid_t>(atoi(bz.c_str() + bz.find(' ') + 1));
  for (int i = 0; i < 500 && StateOf(z) != 'Z'; ++i) crpp::e2e::SleepMs(2);
  crpp::e2e::Ready();
  while (!crpp::e2e::g_verify_requested) {
    g_counter = g_counter + 1;
    crpp::e2e::SleepMs(10);
  }

  crpp::e2e::Verdict v;
  v.Expect(StateOf(s) == 'T', "S is in state %c, not stopped", StateOf(s));
  v.Expect(getpgid(a) == a, "A is in group %d", getpgid(a));
  v.Expect(getsid(0) == root && getpgid(0) == root, "the root left its session or group");
  v.Expect(ParentOf(a) == root && ParentOf(s) == root, "A or S is not the root's child");
  v.Expect(read(shared, buf, 5) == 5 && buf[0] == 10 && buf[4] == 14,
           "the shared file did not go on at offset 10");
  WriteLine(ctl[1], "verify " + std::to_string(lseek(shared, 0, SEEK_CUR)));
  std::string answer = ReadLine(res[0]);
  v.Expect(answer == "OK", "A says: %s", answer.c_str());
  v.Expect(waitpid(a, &st, 0) == a && WIFEXITED(st) && WEXITSTATUS(st) == 0,
           "A did not exit with status 0");
  kill(s, SIGKILL);
  v.Expect(waitpid(s, &st, 0) == s && WIFSIGNALED(st), "S did not end by SIGKILL");
  v.Note("counter=%" PRIu64 " a=%d b=%d z=%d s=%d", static_cast<uint64_t>(g_counter), a, b, z, s);
  v.Finish();
}
