// refused: holds something a dump must refuse before it stops the task, chosen
// by CRPP_E2E_REFUSED in the environment, and counts like the counter program:
//   fifo    a named FIFO (OUTDIR/fifo) open at both ends: every iteration
//           sends a byte through it and reads it back;
//   seccomp a seccomp filter (one that allows every syscall);
//   child   a child process that holds a socket and waits (it dies with us:
//           PR_SET_PDEATHSIG);
//   deleted_dir  a directory (OUTDIR/gone) held open and removed;
//   linked_deleted  a file (OUTDIR/linked) held open and unlinked while a
//           second hard link (OUTDIR/linked.other) keeps it;
//   big_ghost  a deleted file of 2 MiB, more than the default ghost limit.
// Unlike the other programs it is not meant to be dumped: it is what the dump
// refuses, and it checks that the refusal left it alone.
// Verdict: the main loop counted; the FIFO carried every byte in order; the
// process still runs under its filter; the child is still there, and ends
// when killed.
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
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
  int held_fd = -1;
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
  } else if (what == "deleted_dir") {
    const std::string path = out_dir + "/gone";
    if (mkdir(path.c_str(), 0700) != 0) crpp::e2e::Die("mkdir");
    held_fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (held_fd < 0 || rmdir(path.c_str()) != 0) crpp::e2e::Die("deleted_dir");
  } else if (what == "linked_deleted" || what == "big_ghost") {
    const std::string path = out_dir + "/linked";
    held_fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (held_fd < 0) crpp::e2e::Die("open");
    if (what == "linked_deleted" && link(path.c_str(), (path + ".other").c_str()) != 0) {
      crpp::e2e::Die("link");
    }
    if (what == "big_ghost" && ftruncate(held_fd, 2 << 20) != 0) crpp::e2e::Die("ftruncate");
    if (unlink(path.c_str()) != 0) crpp::e2e::Die("unlink");
  } else {
    fprintf(stderr,
            "refused: CRPP_E2E_REFUSED must be fifo, seccomp, child, deleted_dir, "
            "linked_deleted or big_ghost\n");
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
  } else if (held_fd >= 0) {
    struct stat st = {};
    v.Expect(fstat(held_fd, &st) == 0 && st.st_nlink == (what == "linked_deleted" ? 1u : 0u),
             "the held file is not as it was (nlink %ju)", (uintmax_t)st.st_nlink);
  } else {
    v.Expect(kill(child, 0) == 0, "the child %d is gone", child);
    kill(child, SIGKILL);
    int status = 0;
    v.Expect(
        waitpid(child, &status, 0) == child && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
        "the child %d did not end with SIGKILL", child);
  }
  v.Finish();
}
