// pidfd: pidfds of processes of the tree: of the program itself, and of a
// child (O_NONBLOCK, also dup'ed: one description under two numbers).
// Verdict: each pidfd still names its process (fdinfo "Pid:"), the child's
// keeps O_NONBLOCK and its dup; a signal sent through the child's pidfd
// kills the child, which the pidfd then reports (waitid P_PIDFD, poll).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <fstream>
#include <string>

#include "tests/e2e/programs/common.h"

namespace {

pid_t PidOf(int pidfd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(pidfd));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Pid:", 0) == 0) return static_cast<pid_t>(std::stol(line.substr(4)));
  }
  return -2;
}

}  // namespace

int main(int argc, char** argv) {
  crpp::e2e::Setup(argc, argv, "pidfd");
  const pid_t root = getpid();
  pid_t child = fork();
  if (child < 0) crpp::e2e::Die("fork");
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != root) _exit(0);
    for (;;) pause();
  }
  const int self = static_cast<int>(syscall(SYS_pidfd_open, root, 0));
  const int kid = static_cast<int>(syscall(SYS_pidfd_open, child, O_NONBLOCK));
  const int kid_dup = dup(kid);
  if (self < 0 || kid < 0 || kid_dup < 0) crpp::e2e::Die("pidfd_open");
  crpp::e2e::Ready();
  const uint64_t ticks = crpp::e2e::WaitForVerify();

  crpp::e2e::Verdict v;
  v.Expect(PidOf(self) == root, "the own pidfd names pid %d", PidOf(self));
  v.Expect(PidOf(kid) == child, "the child's pidfd names pid %d", PidOf(kid));
  v.Expect(fcntl(kid, F_GETFL) & O_NONBLOCK, "the child's pidfd lost O_NONBLOCK");
  fcntl(kid_dup, F_SETFL, 0);
  v.Expect(!(fcntl(kid, F_GETFL) & O_NONBLOCK), "the dup is another description");
  pollfd p{kid, POLLIN, 0};
  v.Expect(poll(&p, 1, 0) == 0, "the child's pidfd says it exited while it lives");
  v.Expect(syscall(SYS_pidfd_send_signal, kid, SIGKILL, nullptr, 0) == 0,
           "pidfd_send_signal failed");
  v.Expect(poll(&p, 1, 2000) == 1, "the child's pidfd did not report its exit");
  siginfo_t si{};
  v.Expect(waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(kid), &si, WEXITED) == 0 &&
               si.si_pid == child && si.si_status == SIGKILL,
           "waitid(P_PIDFD) did not collect the child");
  v.Note("ticks=%" PRIu64 " child=%d", ticks, child);
  v.Finish();
}
