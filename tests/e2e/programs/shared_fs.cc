// shared_fs: a child made with clone(CLONE_FS) shares the program's cwd,
// root and umask; a child made with fork() has its own.
// Setup: the sharing child moves to OUTDIR/a with umask 027 (the program's
// change with it); the other child moves to OUTDIR/b with umask 077.
// Verdict: the program is in OUTDIR/a with umask 027; asked to, the sharing
// child moves to OUTDIR/c with umask 022 and the program finds itself there
// too (still one fs); the forked child stayed in OUTDIR/b with umask 077.
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <string>

#include "tests/e2e/programs/common.h"

namespace {

std::string Cwd(pid_t pid) {
  char buf[PATH_MAX];
  ssize_t n = readlink(("/proc/" + std::to_string(pid) + "/cwd").c_str(), buf, sizeof buf - 1);
  return n < 0 ? "?" : std::string(buf, static_cast<size_t>(n));
}

// The umask from /proc/PID/status (octal), -1 if not found.
int Umask(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Umask:", 0) == 0) return static_cast<int>(strtol(line.c_str() + 6, nullptr, 8));
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string out = crpp::e2e::Setup(argc, argv, "shared_fs");
  const pid_t root = getpid();
  for (const char* d : {"/a", "/b", "/c"}) mkdir((out + d).c_str(), 0755);
  int cmd[2], ack[2];
  if (pipe(cmd) != 0 || pipe(ack) != 0) crpp::e2e::Die("pipe");

  // Like fork(), but the child shares our fs_struct.
  long sharer = syscall(SYS_clone, CLONE_FS | SIGCHLD, 0, 0, 0, 0);
  if (sharer < 0) crpp::e2e::Die("clone(CLONE_FS)");
  if (sharer == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != root) _exit(0);
    if (chdir((out + "/a").c_str()) != 0) _exit(2);
    umask(027);
    crpp::e2e::WriteLine(ack[1], "moved");
    // Later, on "move": to OUTDIR/c with umask 022.
    if (crpp::e2e::ReadLine(cmd[0]) == "move") {
      int moved = chdir((out + "/c").c_str());
      umask(022);
      crpp::e2e::WriteLine(ack[1], moved == 0 ? "moved" : "failed");
    }
    for (;;) pause();
  }
  if (crpp::e2e::ReadLine(ack[0]) != "moved") crpp::e2e::Die("the sharing child");
  pid_t own = fork();
  if (own < 0) crpp::e2e::Die("fork");
  if (own == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != root) _exit(0);
    if (chdir((out + "/b").c_str()) != 0) _exit(2);
    umask(077);
    for (;;) pause();
  }
  // The forked child's fs is its own from the start; wait until it moved.
  for (int i = 0; i < 500 && Cwd(own) != out + "/b"; ++i) crpp::e2e::SleepMs(2);
  crpp::e2e::Ready();
  crpp::e2e::WaitForVerify();

  crpp::e2e::Verdict v;
  v.Expect(Cwd(root) == out + "/a", "the program's cwd is %s, not the sharing child's %s/a",
           Cwd(root).c_str(), out.c_str());
  v.Expect(Umask(root) == 027, "the program's umask is %o, not 027", Umask(root));
  crpp::e2e::WriteLine(cmd[1], "move");
  v.Expect(crpp::e2e::ReadLine(ack[0]) == "moved", "the sharing child could not move");
  v.Expect(Cwd(root) == out + "/c", "after the sharing child moved, the program's cwd is %s",
           Cwd(root).c_str());
  v.Expect(Umask(root) == 022, "after the sharing child's umask(022), the program's is %o",
           Umask(root));
  v.Expect(Cwd(own) == out + "/b", "the forked child's cwd is %s", Cwd(own).c_str());
  v.Expect(Umask(own) == 077, "the forked child's umask is %o", Umask(own));
  kill(static_cast<pid_t>(sharer), SIGKILL);
  kill(own, SIGKILL);
  waitpid(static_cast<pid_t>(sharer), nullptr, 0);
  waitpid(own, nullptr, 0);
  v.Note("sharer=%ld own=%d", sharer, own);
  v.Finish();
}
