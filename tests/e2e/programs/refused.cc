// refused: holds something a dump must refuse before it stops the task, chosen
// by CRPP_E2E_REFUSED in the environment, and counts like the counter program:
//   fanotify_deleted  a fanotify group with an inode mark on a file
//           (OUTDIR/doomed) deleted since and held open (the last close would
//           take the mark away): the mark's inode has no path;
//   seccomp a seccomp filter (one that allows every syscall);
//   child   a child process that holds a TCP socket and waits (it dies with
//           us: PR_SET_PDEATHSIG);
//   shared_fds_siblings  a child with an fd table of its own, and a second
//           child that the first made by clone(CLONE_FILES | CLONE_PARENT):
//           two siblings sharing a table their parent does not;
//   shared_fds_grandparent  a child made by clone(CLONE_FILES) makes a
//           grandchild the same way, then takes a table of its own
//           (unshare): the grandchild shares our table, not its parent's;
//   shared_vm_sighand  a child made by clone(CLONE_VM | CLONE_SIGHAND): a
//           process sharing our memory and signal handlers, as a thread would;
//   shared_vm  a child made by clone(CLONE_VM), as vfork() makes one;
//   unix_peer  a stream UNIX socket connected to the listening socket at
//           CRPP_E2E_UNIX_PEER, which a process outside the tree holds;
//   epoll_foreign  an epoll shared with a child, watching an eventfd (count
//           1) that only the child holds, registered under an fd number
//           (100) the parent, the epoll's first holder, does not have;
//   epoll_closed  an epoll shared with a child, watching an eventfd (count
//           1) that the parent registered and closed once the child held it
//           too: only the child holds it now;
//   deleted_dir  a directory (OUTDIR/gone) held open and removed;
//   linked_deleted  a file (OUTDIR/linked) held open and unlinked while a
//           second hard link (OUTDIR/linked.other) keeps it;
//   big_ghost  a deleted file of 2 MiB, more than the default ghost limit;
//   pty_slave  the pty slave CRPP_E2E_PTY, whose master a process outside
//           the tree holds;
//   pty_ctty  that slave as controlling terminal (TIOCSCTTY), no fd of it;
//   pty_master  a pty master whose slave nobody opened.
// Unlike the other programs it is not meant to be dumped: it is what the dump
// refuses, and it checks that the refusal left it alone.
// Verdict: the main loop counted; the fanotify group still has its mark;
// the process still runs under its filter; the children are still there,
// and end when killed; the UNIX socket still sends; the epoll still reports
// the child's eventfd; the pty fd is still a terminal, the controlling
// terminal still there.
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/e2e/programs/common.h"

namespace {

volatile uint64_t g_counter = 0;
constexpr uint64_t kEpollTag = 0xe90011;

// A child running in our address space (and on our TLS): raw syscalls only,
// and nothing written to memory.
int PauseInOurMemory(void*) {
  syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  for (;;) syscall(SYS_pause);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string out_dir = crpp::e2e::Setup(argc, argv, "refused");
  const char* env = getenv("CRPP_E2E_REFUSED");
  const std::string what = env != nullptr ? env : "";
  int fanotify = -1;
  pid_t child = -1;
  pid_t second_child = -1;
  int unix_fd = -1;
  int epoll = -1;
  int held_fd = -1;
  int tty_fd = -1;
  if (what == "fanotify_deleted") {
    fanotify = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC, O_RDONLY);
    const std::string doomed = out_dir + "/doomed";
    int fd = open(doomed.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fanotify < 0 || fd < 0) crpp::e2e::Die("fanotify_init");
    // Held open: the last close of a deleted file would take the mark away.
    if (fanotify_mark(fanotify, FAN_MARK_ADD, FAN_CLOSE_WRITE, AT_FDCWD, doomed.c_str()) != 0 ||
        unlink(doomed.c_str()) != 0) {
      crpp::e2e::Die("fanotify_mark");
    }
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
      if (socket(AF_INET, SOCK_STREAM, 0) < 0) _exit(3);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      for (;;) pause();
    }
  } else if (what == "shared_fds_siblings") {
    const pid_t parent = getpid();
    int told[2];
    if (pipe(told) != 0) crpp::e2e::Die("pipe");
    child = fork();
    if (child < 0) crpp::e2e::Die("fork");
    if (child == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      // Our sibling (CLONE_PARENT), sharing this fd table.
      long sibling = syscall(SYS_clone, CLONE_FILES | CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
      if (sibling == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(0);
        for (;;) pause();
      }
      crpp::e2e::WriteLine(told[1], std::to_string(sibling));
      for (;;) pause();
    }
    second_child = static_cast<pid_t>(atol(crpp::e2e::ReadLine(told[0]).c_str()));
    if (second_child <= 0) crpp::e2e::Die("clone(CLONE_FILES | CLONE_PARENT)");
  } else if (what == "shared_fds_grandparent") {
    const pid_t parent = getpid();
    int told[2];
    if (pipe(told) != 0) crpp::e2e::Die("pipe");
    child = static_cast<pid_t>(syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0));
    if (child < 0) crpp::e2e::Die("clone(CLONE_FILES)");
    if (child == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      const pid_t me = getpid();
      if (syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != me) _exit(0);
        for (;;) pause();
      }
      if (unshare(CLONE_FILES) != 0) _exit(3);
      crpp::e2e::WriteLine(told[1], "ready");
      for (;;) pause();
    }
    if (crpp::e2e::ReadLine(told[0]) != "ready") crpp::e2e::Die("the child's unshare");
  } else if (what == "shared_vm_sighand" || what == "shared_vm") {
    static char stack[64 * 1024];
    int flags = CLONE_VM | (what == "shared_vm_sighand" ? CLONE_SIGHAND : 0) | SIGCHLD;
    child = clone(PauseInOurMemory, stack + sizeof stack, flags, nullptr);
    if (child < 0) crpp::e2e::Die("clone(CLONE_VM)");
  } else if (what == "unix_peer") {
    const char* peer = getenv("CRPP_E2E_UNIX_PEER");
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", peer != nullptr ? peer : "");
    unix_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (unix_fd < 0 || connect(unix_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      crpp::e2e::Die("connect to CRPP_E2E_UNIX_PEER");
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
  } else if (what == "epoll_closed") {
    epoll = epoll_create1(0);
    int efd = eventfd(1, EFD_CLOEXEC);
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u64 = kEpollTag;
    if (epoll < 0 || efd < 0 || epoll_ctl(epoll, EPOLL_CTL_ADD, efd, &ev) != 0) {
      crpp::e2e::Die("epoll");
    }
    const pid_t parent = getpid();
    child = fork();
    if (child < 0) crpp::e2e::Die("fork");
    if (child == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      for (;;) pause();
    }
    close(efd);
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
  } else if (what == "pty_slave" || what == "pty_ctty") {
    const char* path = getenv("CRPP_E2E_PTY");
    tty_fd = open(path != nullptr ? path : "", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty_fd < 0) crpp::e2e::Die("open CRPP_E2E_PTY");
    if (what == "pty_ctty") {
      if (ioctl(tty_fd, TIOCSCTTY, 0) != 0) crpp::e2e::Die("TIOCSCTTY");
      close(tty_fd);
      tty_fd = -1;
    }
  } else if (what == "pty_master") {
    tty_fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty_fd < 0) crpp::e2e::Die("posix_openpt");
  } else {
    fprintf(stderr,
            "refused: CRPP_E2E_REFUSED must be fanotify_deleted, seccomp, child, "
            "shared_fds_siblings, shared_fds_grandparent, shared_vm_sighand, shared_vm, unix_peer, "
            "epoll_foreign, "
            "epoll_closed, deleted_dir, linked_deleted, big_ghost, pty_slave, pty_ctty or "
            "pty_master\n");
    exit(2);
  }
  crpp::e2e::Ready();

  while (!crpp::e2e::g_verify_requested) {
    g_counter = g_counter + 1;
    crpp::e2e::SleepMs(10);
  }

  crpp::e2e::Verdict v;
  v.Expect(g_counter > 0, "the main loop never counted");
  v.Note("what=%s counter=%" PRIu64, what.c_str(), static_cast<uint64_t>(g_counter));
  if (what == "fanotify_deleted") {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fanotify);
    FILE* in = fopen(path, "r");
    char line[512];
    int marks = 0;
    while (in != nullptr && fgets(line, sizeof line, in) != nullptr) {
      if (strncmp(line, "fanotify ino:", 13) == 0) ++marks;
    }
    if (in != nullptr) fclose(in);
    v.Expect(marks == 1, "the fanotify group has %d inode marks (want 1)", marks);
  } else if (what == "seccomp") {
    v.Expect(prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == SECCOMP_MODE_FILTER,
             "the process no longer runs under its seccomp filter");
  } else if (what == "pty_slave" || what == "pty_master") {
    v.Expect(isatty(tty_fd) == 1, "the pty fd %d is no terminal any more", tty_fd);
  } else if (what == "pty_ctty") {
    const int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
    v.Expect(tty >= 0, "no controlling terminal any more: %s", strerror(errno));
    if (tty >= 0) close(tty);
  } else if (held_fd >= 0) {
    struct stat st = {};
    v.Expect(fstat(held_fd, &st) == 0 && st.st_nlink == (what == "linked_deleted" ? 1u : 0u),
             "the held file is not as it was (nlink %ju)", (uintmax_t)st.st_nlink);
  } else if (what == "unix_peer") {
    v.Expect(send(unix_fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1,
             "the UNIX socket no longer sends: %s", strerror(errno));
  } else {
    if (what == "epoll_foreign" || what == "epoll_closed") {
      struct epoll_event ev = {};
      v.Expect(epoll_wait(epoll, &ev, 1, 0) == 1 && ev.data.u64 == kEpollTag,
               "the epoll no longer reports the child's eventfd");
    }
    for (pid_t c : {child, second_child}) {
      if (c < 0) continue;
      v.Expect(kill(c, 0) == 0, "the child %d is gone", c);
      kill(c, SIGKILL);
      int status = 0;
      v.Expect(waitpid(c, &status, 0) == c && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
               "the child %d did not end with SIGKILL", c);
    }
  }
  v.Finish();
}
