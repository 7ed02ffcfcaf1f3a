// refused: holds something a dump must refuse before it stops the task, chosen
// by CRPP_E2E_REFUSED in the environment, and counts like the counter program:
//   fifo    a named FIFO (OUTDIR/fifo) open at both ends: every iteration
//           sends a byte through it and reads it back;
//   seccomp a seccomp filter (one that allows every syscall);
//   child   a child process that holds a socket and waits (it dies with us:
//           PR_SET_PDEATHSIG).
//   epoll_foreign  an epoll shared with a child, watching an eventfd (count
//           1) that only the child holds, registered under an fd number
//           (100) the parent, the epoll's first holder, does not have.
// Unlike the other programs it is not meant to be dumped: it is what the dump
// refuses, and it checks that the refusal left it alone.
// Verdict: the main loop counted; the FIFO carried every byte in order; the
// process still runs under its filter; the child is still there, and ends
// when killed; the epoll still reports the child's eventfd.
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/e2e/programs/common.h"

namespace {

volatile uint64_t g_counter = 0;
constexpr uint64_t kEpollTag = 0xe90011;
// Sends the next byte through the pipe and reads it back; notes the first
// failure in ERROR.
void PipeRoundTrip(const int (&fds)[2], uint8_t& next, std::string& error) {
  const uint8_t out = next++;
  uint8_t in = 0;
  if (write(fds[1], &out, 1) != 1 || read(fds[0], &in, 1) != 1 || in != out) {
    if (error.empty()) {
      error = "the FIFO did not carry byte " + std::to_string(out) + " (got " + std::to_string(in) +
              ")";
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string out_dir = crpp::e2e::Setup(argc, argv, "refused");
  const char* env = getenv("CRPP_E2E_REFUSED");
  const std::string what = env != nullptr ? env : "";
  int pipe_fds[2] = {-1, -1};
  pid_t child = -1;
  int epoll = -1;
  if (what == "fifo") {
    const std::string path = out_dir + "/fifo";
    if (mkfifo(path.c_str(), 0600) != 0) crpp::e2e::Die("mkfifo");
    pipe_fds[0] = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    pipe_fds[1] = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (pipe_fds[0] < 0 || pipe_fds[1] < 0) crpp::e2e::Die("open fifo");
  } else if (what == "seccomp") {
    sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    sock_fprog program{1, allow};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
      crpp::e2e::Die("seccomp");
    }
  } else if (what == "child") {
    const pid_t parent = getpid();
    child = fork();
    if (child < 0) crpp::e2e::Die("fork");
    if (child == 0) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) _exit(3);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      for (;;) pause();
    }
  } else if (what == "epoll_foreign") {
    epoll = epoll_create1(0);
    int ready[2];
    if (epoll < 0 || pipe(ready) != 0) crpp::e2e::Die("epoll_create1");
    const pid_t parent = getpid();
    child = fork();
    if (child < 0) crpp::e2e::Die("fork");
    if (child == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      // Numbered above every fd of the parent.
      int efd = fcntl(eventfd(1, 0), F_DUPFD, 100);
      struct epoll_event ev = {};
      ev.events = EPOLLIN;
      ev.data.u64 = kEpollTag;
      if (efd < 0 || epoll_ctl(epoll, EPOLL_CTL_ADD, efd, &ev) != 0) _exit(3);
      if (write(ready[1], "r", 1) != 1 || getppid() != parent) _exit(0);
      for (;;) pause();
    }
    char c;
    if (read(ready[0], &c, 1) != 1) crpp::e2e::Die("the child did not set up the epoll");
    close(ready[0]);
    close(ready[1]);
  } else {
    fprintf(stderr, "refused: CRPP_E2E_REFUSED must be fifo, seccomp, child or epoll_foreign\n");
    exit(2);
  }
  crpp::e2e::Ready();

  uint8_t next_byte = 0;
  std::string pipe_error;
  while (!crpp::e2e::g_verify_requested) {
    g_counter = g_counter + 1;
    if (what == "fifo") PipeRoundTrip(pipe_fds, next_byte, pipe_error);
    crpp::e2e::SleepMs(10);
  }

  crpp::e2e::Verdict v;
  v.Expect(g_counter > 0, "the main loop never counted");
  v.Note("what=%s counter=%" PRIu64, what.c_str(), static_cast<uint64_t>(g_counter));
  if (what == "fifo") {
    PipeRoundTrip(pipe_fds, next_byte, pipe_error);
    v.Expect(pipe_error.empty(), "%s", pipe_error.c_str());
  } else if (what == "seccomp") {
    v.Expect(prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == SECCOMP_MODE_FILTER,
             "the process no longer runs under its seccomp filter");
  } else {
    if (what == "epoll_foreign") {
      struct epoll_event ev = {};
      v.Expect(epoll_wait(epoll, &ev, 1, 0) == 1 && ev.data.u64 == kEpollTag,
               "the epoll no longer reports the child's eventfd");
    }
    v.Expect(kill(child, 0) == 0, "the child %d is gone", child);
    kill(child, SIGKILL);
    int status = 0;
    v.Expect(
        waitpid(child, &status, 0) == child && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
        "the child %d did not end with SIGKILL", child);
  }
  v.Finish();
}
