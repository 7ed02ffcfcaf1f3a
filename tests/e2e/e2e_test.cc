// End-to-end checkpoint/restore of the programs in tests/e2e/programs: each
// case dumps a real process with //tools:criu, restores it from the images
// with the same pid, and has the restored process check itself from the
// inside. BUILD.bazel runs each case as its own test (--run_test=CASE).
#define BOOST_TEST_MODULE e2e
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "tests/e2e/cases.h"
#include "tests/e2e/harness.h"

namespace {

using crpp::e2e::Cycles;
using crpp::e2e::DumpRestoreVerify;
using crpp::e2e::LeaveRunning;
using crpp::e2e::ProcCount;
using crpp::e2e::RequireVerdict;
using crpp::e2e::Session;
using crpp::e2e::SessionOptions;

// Processes that keep every CPU busy while they live.
class CpuHogs {
 public:
  CpuHogs() {
    for (long i = 0; i < sysconf(_SC_NPROCESSORS_ONLN); ++i) {
      const pid_t pid = fork();
      if (pid == 0) {
        for (volatile uint64_t n = 0;; n = n + 1) {
        }
      }
      if (pid > 0) pids_.push_back(pid);
    }
  }
  ~CpuHogs() {
    for (pid_t pid : pids_) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  CpuHogs(const CpuHogs&) = delete;
  CpuHogs& operator=(const CpuHogs&) = delete;

 private:
  std::vector<pid_t> pids_;
};

}  // namespace

BOOST_AUTO_TEST_CASE(counter) {
  Session s("counter");
  DumpRestoreVerify(s);
}

BOOST_AUTO_TEST_CASE(memory) {
  Session s("memory");
  DumpRestoreVerify(s);
}

BOOST_AUTO_TEST_CASE(registers) {
  Session s("registers");
  DumpRestoreVerify(s);
}

BOOST_AUTO_TEST_CASE(signals) {
  Session s("signals");
  DumpRestoreVerify(s, /*send_sigusr2=*/true);
}

BOOST_AUTO_TEST_CASE(timers) {
  Session s("timers");
  DumpRestoreVerify(s);
}

BOOST_AUTO_TEST_CASE(files) {
  Session s("files");
  DumpRestoreVerify(s);
}

BOOST_AUTO_TEST_CASE(mappings) {
  Session s("mappings");
  DumpRestoreVerify(s);
}

BOOST_AUTO_TEST_CASE(leave_running) {
  Session s("leave_running", "counter");
  LeaveRunning(s);
}

// The parasite's cure must give the original back every register.
BOOST_AUTO_TEST_CASE(leave_running_registers) {
  Session s("leave_running_registers", "registers");
  LeaveRunning(s);
}

// dump -s: the original is left stopped; SIGCONT resumes it intact; a copy
// restored from the images works too.
BOOST_AUTO_TEST_CASE(leave_stopped) {
  Session s("leave_stopped", "counter");
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.Dump({"-s"}));
  E2E_REQUIRE_OK(s, s.ExpectStopped());
  E2E_REQUIRE_OK(s, s.Signal(SIGCONT));
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  RequireVerdict(s, false, "original after dump -s and SIGCONT");
  E2E_REQUIRE_OK(s, s.Restore());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  RequireVerdict(s, false, "restored");
}

// The program stays in the harness's session and process group: dump and
// restore both get --shell-job.
BOOST_AUTO_TEST_CASE(shell_job) {
  SessionOptions options;
  options.shell_job = true;
  Session s("shell_job", "counter", options);
  DumpRestoreVerify(s);
}

// A restored process can be dumped and restored again.
BOOST_AUTO_TEST_CASE(redump) {
  Session s("redump", "memory");
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.Dump());
  E2E_REQUIRE_OK(s, s.Restore());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  E2E_REQUIRE_OK(s, s.Dump());
  E2E_REQUIRE_OK(s, s.Restore());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  RequireVerdict(s, false, "restored twice");
}

// Dump and restore while every CPU is busy. Restore once let the task go on
// before it traced it: a task quicker than the engine went through the
// restorer unseen, and `criu restore` followed the restored program forever.
BOOST_AUTO_TEST_CASE(under_load) {
  Session s("under_load", "counter");
  CpuHogs hogs;  // gone (killed and reaped) before the session cleans up
  E2E_REQUIRE_OK(s, s.Start());
  for (int i = 0; i < 10; ++i) {
    E2E_REQUIRE_OK(s, s.Dump());
    E2E_REQUIRE_OK(s, s.Restore());
  }
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  RequireVerdict(s, false, "restored 10 times under load");
}

// A tree of three levels: a zombie, a stopped child, a grandchild, a group of
// its own, a file description shared by two processes (tree.cc).
BOOST_AUTO_TEST_CASE(tree) {
  Session s("tree");
  DumpRestoreVerify(s);
}

// producer | filter | consumer with data in flight: no byte lost.
BOOST_AUTO_TEST_CASE(pipeline) {
  Session s("pipeline");
  DumpRestoreVerify(s);
}

// The pipeline dumped and restored 20 times in a row: the data still flows
// unbroken, and the root holds no more fds than at the start.
BOOST_AUTO_TEST_CASE(pipeline_cycles) {
  Session s("pipeline_cycles", "pipeline");
  Cycles(s);
}

// A process of 11 threads: each worker's registers, name, altstack and the
// signal queued for it alone, the process's queued signal, threads asleep
// on a futex (threads.cc).
BOOST_AUTO_TEST_CASE(threads) {
  Session s("threads");
  DumpRestoreVerify(s);
}

// dump -R of the threads: every thread of the original goes on untouched
// (its queued signals still queued), and a copy restored from the images too.
BOOST_AUTO_TEST_CASE(threads_leave_running) {
  Session s("threads_leave_running", "threads");
  LeaveRunning(s);
}

// The threads dumped and restored 20 times in a row; no thread or fd more.
BOOST_AUTO_TEST_CASE(threads_cycles) {
  Session s("threads_cycles", "threads");
  Cycles(s);
}

// Named FIFOs with data in them, one end in each of two processes, one
// description shared by both (fifo.cc).
BOOST_AUTO_TEST_CASE(fifo) {
  Session s("fifo");
  DumpRestoreVerify(s);
}

BOOST_AUTO_TEST_CASE(fifo_cycles) {
  Session s("fifo_cycles", "fifo");
  Cycles(s);
}

// A memfd and a shared anonymous mapping shared by two processes (one object
// each, not copies), a sealed memfd (shmem.cc).
BOOST_AUTO_TEST_CASE(shmem) {
  Session s("shmem");
  DumpRestoreVerify(s);
}

BOOST_AUTO_TEST_CASE(shmem_cycles) {
  Session s("shmem_cycles", "shmem");
  Cycles(s);
}

// An inotify instance shared by two processes, with watches whose numbers
// have a gap (inotify.cc).
BOOST_AUTO_TEST_CASE(inotify) {
  Session s("inotify");
  DumpRestoreVerify(s);
}

BOOST_AUTO_TEST_CASE(inotify_cycles) {
  Session s("inotify_cycles", "inotify");
  Cycles(s);
}

// A fanotify group shared by two processes with inode marks (one with an
// ignored mask that survives writes, one set with FAN_MARK_IGNORE), a mount
// mark and a filesystem mark (fanotify.cc).
BOOST_AUTO_TEST_CASE(fanotify) {
  Session s("fanotify");
  DumpRestoreVerify(s);
}

// dump -R of the group: the original keeps its marks; a copy restored from
// the images has them too.
BOOST_AUTO_TEST_CASE(fanotify_leave_running) {
  Session s("fanotify_leave_running", "fanotify");
  LeaveRunning(s);
}

BOOST_AUTO_TEST_CASE(fanotify_cycles) {
  Session s("fanotify_cycles", "fanotify");
  Cycles(s);
}

// A server with a listening UNIX socket, an accepted client and one still
// waiting in its queue, socketpairs (stream, datagram, seqpacket) between
// processes and an abstract datagram name, with data queued everywhere
// (unix_server.cc): every queued byte and message comes back, in order.
BOOST_AUTO_TEST_CASE(unix_server) {
  Session s("unix_server");
  DumpRestoreVerify(s);
}

// The server dumped and restored 20 times in a row: the queues come back
// each time, and the root holds no more fds than at the start.
BOOST_AUTO_TEST_CASE(unix_server_cycles) {
  Session s("unix_server_cycles", "unix_server");
  Cycles(s);
}

// A datagram socket of the server connected to one outside the tree: the
// dump refuses it, naming the peer, unless --external unix[INO] allows it;
// the restored socket is connected to it again by name and sends to it.
BOOST_AUTO_TEST_CASE(unix_external) {
  const std::string path = "/tmp/crpp-e2e-external-" + std::to_string(getpid()) + ".sock";
  unlink(path.c_str());
  const int outside = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  BOOST_REQUIRE(outside >= 0 && bind(outside, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  struct stat st;
  BOOST_REQUIRE(fstat(outside, &st) == 0);
  const std::string ino = std::to_string(st.st_ino);
  {
    SessionOptions options;
    options.env = {"CRPP_E2E_UNIX_EXTERNAL=" + path};
    Session s("unix_external", "unix_server", options);
    E2E_REQUIRE_OK(s, s.Start());
    const std::string images = s.dir() + "/refused-images";
    std::filesystem::create_directories(images);
    auto refused = s.RunCriuAnyway("dump-refused", {"dump", "-t", std::to_string(s.pid()), "-D",
                                                    images, "-v4", "-o", "dump.log"});
    E2E_REQUIRE_OK(s, refused.status());
    BOOST_TEST(!(WIFEXITED(refused->wait_status) && WEXITSTATUS(refused->wait_status) == 0));
    BOOST_TEST(
        refused->output.find("connected to socket " + ino + " (" + path + ")") != std::string::npos,
        refused->output);
    BOOST_TEST(refused->output.find("--external unix[" + ino + "]") != std::string::npos,
               refused->output);
    E2E_REQUIRE_OK(s, s.ExpectRunning());
    E2E_REQUIRE_OK(s, s.Dump({"--external", "unix[" + ino + "]"}));
    E2E_REQUIRE_OK(s, s.Restore());
    E2E_REQUIRE_OK(s, s.ExpectRunning());
    RequireVerdict(s, false, "restored");
    char buf[64];
    const ssize_t n = recv(outside, buf, sizeof buf, MSG_DONTWAIT);
    BOOST_TEST(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0) == "external-after");
  }
  close(outside);
  unlink(path.c_str());
}

// eventfds (one a semaphore), timerfds (periodic and one-shot), a signalfd
// with a signal pending and an epoll watching a pipe and some of them, each
// shared with a child (events.cc).
BOOST_AUTO_TEST_CASE(events) {
  Session s("events");
  DumpRestoreVerify(s);
}

// dump -R of the events: the dump reads the counters, the timers and the
// pending signal without consuming any of them.
BOOST_AUTO_TEST_CASE(events_leave_running) {
  Session s("events_leave_running", "events");
  LeaveRunning(s);
}

// The events program dumped and restored 20 times in a row: no fd more, and
// the counts, timers and the pending signal still right.
BOOST_AUTO_TEST_CASE(events_cycles) {
  Session s("events_cycles", "events");
  Cycles(s);
}

// An epoll watching a UNIX socket, a FIFO, an inotify instance, a signalfd,
// a pidfd, /dev/random, an eventfd registered under a number closed since,
// and a second epoll watching pipes (one a disarmed one-shot), shared with a
// child (epoll_nested.cc).
BOOST_AUTO_TEST_CASE(epoll_nested) {
  Session s("epoll_nested");
  DumpRestoreVerify(s);
}

// dump -R: the original's epolls are left as they were.
BOOST_AUTO_TEST_CASE(epoll_nested_leave_running) {
  Session s("epoll_nested_leave_running", "epoll_nested");
  LeaveRunning(s);
}

// The epolls dumped and restored 20 times in a row: the same watch sets and
// no fd more.
BOOST_AUTO_TEST_CASE(epoll_nested_cycles) {
  Session s("epoll_nested_cycles", "epoll_nested");
  Cycles(s);
}

// Deleted files held open, one shared with a child; O_APPEND and O_DIRECT
// (ghost.cc).
BOOST_AUTO_TEST_CASE(ghost) {
  Session s("ghost");
  DumpRestoreVerify(s);
}

namespace {

// The names in DIR that `keep` does not accept.
std::vector<std::string> Unexpected(const std::string& dir,
                                    const std::function<bool(const std::string&)>& keep) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (!keep(name)) out.push_back(name);
  }
  if (ec) out.push_back("(cannot list " + dir + ": " + ec.message() + ")");
  return out;
}

}  // namespace

// The deleted files dumped and restored 20 times: still deleted, contents and
// offsets intact, and no file left behind in OUTDIR or the images dirs.
BOOST_AUTO_TEST_CASE(ghost_cycles) {
  Session s("ghost_cycles", "ghost");
  E2E_REQUIRE_OK(s, s.Start());
  for (int i = 0; i < 20; ++i) {
    E2E_REQUIRE_OK(s, s.Dump());
    E2E_REQUIRE_OK(s, s.Restore());
  }
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  for (const std::string& name : Unexpected(
           s.out_dir(), [](const std::string& n) { return n == "report" || n == "direct.data"; })) {
    BOOST_ERROR("left in OUTDIR: " << name);
  }
  for (int n = 1; n <= s.dumps(); ++n) {
    for (const std::string& name : Unexpected(s.ImagesDir(n), [](const std::string& f) {
           return f.ends_with(".img") || f.ends_with(".log") || f == "pid" ||
                  f.starts_with("stats-");
         })) {
      BOOST_ERROR("left in images-" << n << ": " << name);
    }
  }
  RequireVerdict(s, false, "restored 20 times");
}

// A deleted file that another hard link keeps: --link-remap links it back
// at dump, restore opens it under its old name and removes the link, three
// times in a row.
BOOST_AUTO_TEST_CASE(ghost_link_remap) {
  SessionOptions options;
  options.env = {"CRPP_E2E_GHOST_LINKED=1"};
  Session s("ghost_link_remap", "ghost", options);
  E2E_REQUIRE_OK(s, s.Start());
  for (int i = 0; i < 3; ++i) {
    E2E_REQUIRE_OK(s, s.Dump({"--link-remap"}));
    E2E_REQUIRE_OK(s, s.Restore());
  }
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  RequireVerdict(s, false, "restored 3 times");
}

// flock, POSIX and OFD locks dumped and taken again (locks.cc).
BOOST_AUTO_TEST_CASE(locks) {
  Session s("locks");
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.Dump({"--file-locks"}));
  E2E_REQUIRE_OK(s, s.Restore({"--file-locks"}));
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  RequireVerdict(s, false, "restored");
}

// Without --file-locks, criu dump refuses a task that holds locks, names the
// option, and leaves it running with its locks.
BOOST_AUTO_TEST_CASE(locks_refused_without_option) {
  Session s("locks_refused_without_option", "locks");
  E2E_REQUIRE_OK(s, s.Start());
  const std::string images = s.dir() + "/images-refused";
  std::filesystem::create_directories(images);
  auto run = s.RunCriuAnyway("dump-refused", {"dump", "-t", std::to_string(s.pid()), "-D", images,
                                              "-v4", "-o", "dump.log"});
  E2E_REQUIRE_OK(s, run.status());
  BOOST_CHECK_MESSAGE(WIFEXITED(run->wait_status) && WEXITSTATUS(run->wait_status) == 1,
                      "criu dump ended with " << crpp::e2e::DescribeWaitStatus(run->wait_status));
  BOOST_CHECK_MESSAGE(
      run->output.find("--file-locks") != std::string::npos &&
          run->output.find("pid " + std::to_string(s.pid()) + " fd ") != std::string::npos,
      "criu dump said: " << run->output);
  std::cout << s.dir() << ": " << run->output;
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  RequireVerdict(s, false, "original after the refused dump");
}

// The locks dumped and restored 20 times in a row.
BOOST_AUTO_TEST_CASE(locks_cycles) {
  Session s("locks_cycles", "locks");
  Cycles(s, {"--file-locks"});
}

// Someone outside takes a lock between dump and restore: the restore fails,
// naming the lock, and leaves nothing behind; once it is free, restore works.
BOOST_AUTO_TEST_CASE(locks_conflict) {
  Session s("locks_conflict", "locks");
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.Dump({"--file-locks"}));
  const int fd = open((s.out_dir() + "/flock.lock").c_str(), O_RDWR | O_CLOEXEC);
  BOOST_REQUIRE(fd >= 0);
  BOOST_REQUIRE(flock(fd, LOCK_EX | LOCK_NB) == 0);
  const absl::Status refused = s.Restore({"--file-locks"});
  BOOST_CHECK_MESSAGE(!refused.ok() && refused.ToString().find("flock write lock is held by "
                                                               "someone else") != std::string::npos,
                      "restore said: " << refused.ToString());
  std::cout << s.dir() << ": " << refused.ToString() << std::endl;
  BOOST_CHECK_MESSAGE(kill(s.pid(), 0) != 0, "pid " << s.pid() << " lives after a failed restore");
  close(fd);
  E2E_REQUIRE_OK(s, s.Restore({"--file-locks"}));
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  RequireVerdict(s, false, "restored once the lock was free");
}

// pidfds of the program and of its child, one dup'ed (pidfd.cc).
BOOST_AUTO_TEST_CASE(pidfd) {
  Session s("pidfd");
  DumpRestoreVerify(s);
}

BOOST_AUTO_TEST_CASE(pidfd_cycles) {
  Session s("pidfd_cycles", "pidfd");
  Cycles(s);
}

// Threads all stopped at the same instruction (yielders.cc), left running by
// ten dumps in a row: none may run into code patched for another thread.
BOOST_AUTO_TEST_CASE(yielders_leave_running) {
  Session s("yielders_leave_running", "yielders");
  E2E_REQUIRE_OK(s, s.Start());
  for (int i = 0; i < 10; ++i) {
    E2E_REQUIRE_OK(s, s.Dump({"-R"}));
    E2E_REQUIRE_OK(s, s.ExpectRunning());
  }
  RequireVerdict(s, false, "after ten dumps -R");
}

// A child sharing the program's cwd, root and umask (clone(CLONE_FS)) and
// one with its own (shared_fs.cc): restored shared and not.
BOOST_AUTO_TEST_CASE(shared_fs) {
  Session s("shared_fs");
  DumpRestoreVerify(s);
}

BOOST_AUTO_TEST_CASE(shared_fs_cycles) {
  Session s("shared_fs_cycles", "shared_fs");
  Cycles(s);
}

// A child and a grandchild sharing the program's fd table (clone(CLONE_FILES))
// and a grandchild with a copy of its own (shared_files.cc): one table after
// restore, its fds (a file, a pipe with bytes in it) where they were.
BOOST_AUTO_TEST_CASE(shared_files) {
  Session s("shared_files");
  DumpRestoreVerify(s);
}

BOOST_AUTO_TEST_CASE(shared_files_leave_running) {
  Session s("shared_files_leave_running", "shared_files");
  LeaveRunning(s);
}

BOOST_AUTO_TEST_CASE(shared_files_cycles) {
  Session s("shared_files_cycles", "shared_files");
  Cycles(s);
}

// A pty whose slave is a session's controlling terminal, with termios, window
// size, modes and bytes queued both ways (pty.cc).
BOOST_AUTO_TEST_CASE(pty) {
  Session s("pty");
  DumpRestoreVerify(s);
}

// dump -R reads the queued bytes out of the pty and must put them back.
BOOST_AUTO_TEST_CASE(pty_leave_running) {
  Session s("pty_leave_running", "pty");
  LeaveRunning(s);
}

BOOST_AUTO_TEST_CASE(pty_cycles) {
  Session s("pty_cycles", "pty");
  Cycles(s);
}

namespace {

// The index of the first pty master PID holds (its fdinfo's tty-index), or -1.
int PtyIndexOf(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fdinfo";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("tty-index:", 0) == 0) return std::stoi(line.substr(10));
    }
  }
  return -1;
}

}  // namespace

// Someone else holds the pty's index at restore: the restore fails naming it
// and leaves nothing behind; once the index is free, restore works.
BOOST_AUTO_TEST_CASE(pty_index_taken) {
  Session s("pty_index_taken", "pty");
  E2E_REQUIRE_OK(s, s.Start());
  const int index = PtyIndexOf(s.pid());
  BOOST_REQUIRE(index >= 0);
  E2E_REQUIRE_OK(s, s.Dump());
  std::vector<int> held;
  for (int i = 0; i < 64; ++i) {
    const int fd = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    BOOST_REQUIRE(fd >= 0);
    held.push_back(fd);
    int got = -1;
    BOOST_REQUIRE(ioctl(fd, TIOCGPTN, &got) == 0);
    if (got >= index) break;
  }
  const absl::Status refused = s.Restore();
  const std::string want = "pty index " + std::to_string(index) + " is taken";
  BOOST_CHECK_MESSAGE(!refused.ok() && refused.ToString().find(want) != std::string::npos,
                      "restore said: " << refused.ToString());
  std::cout << s.dir() << ": " << refused.ToString() << std::endl;
  BOOST_CHECK_MESSAGE(kill(s.pid(), 0) != 0, "pid " << s.pid() << " lives after a failed restore");
  for (int fd : held) close(fd);
  E2E_REQUIRE_OK(s, s.Restore());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  RequireVerdict(s, false, "restored once the index was free");
}
