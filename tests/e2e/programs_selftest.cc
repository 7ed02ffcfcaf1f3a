// The e2e programs and the harness without checkpoint/restore: every program
// reports "ready", runs its loop and answers SIGUSR1 with "OK"; the checks
// catch what a bad restore would do (a changed register or memory byte, a
// signal handler that never runs); the harness's own checks and clean-up work.
#define BOOST_TEST_MODULE programs_selftest
#include <elf.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/e2e/harness.h"

namespace {

using crpp::e2e::Session;
using crpp::e2e::SessionOptions;

// Start, check the loop runs, ask for the verdict; it must be OK.
void RunStandalone(Session& s, bool send_sigusr2 = false) {
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  if (send_sigusr2) E2E_REQUIRE_OK(s, s.Signal(SIGUSR2));
  E2E_REQUIRE_OK(s, s.Verdict());
  std::cout << s.dir() << ": " << s.last_verdict() << std::endl;
}

// The verdict must be FAIL and mention each of WANTED.
void RequireFailVerdict(Session& s, const std::vector<std::string>& wanted) {
  absl::StatusOr<std::string> line = s.VerdictLine();
  E2E_REQUIRE_OK(s, line.status());
  std::cout << s.dir() << ": " << *line << std::endl;
  BOOST_REQUIRE_MESSAGE(line->rfind("FAIL ", 0) == 0, "expected FAIL, got: " << *line);
  for (const std::string& w : wanted) {
    BOOST_CHECK_MESSAGE(line->find(w) != std::string::npos, "'" << w << "' not in: " << *line);
  }
}

// What a restore that loses registers would do: changes rbx and the low byte
// of xmm8 (so also of ymm8/zmm8) of a running process, with ptrace.
absl::Status ChangeRegisters(pid_t pid) {
  if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0 || ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0) {
    return absl::InternalError("PTRACE_SEIZE/INTERRUPT failed");
  }
  int status = 0;
  if (waitpid(pid, &status, __WALL) != pid || !WIFSTOPPED(status)) {
    return absl::InternalError("the tracee did not stop");
  }
  struct user_regs_struct regs = {};
  ptrace(PTRACE_GETREGS, pid, 0, &regs);
  regs.rbx ^= 1;
  ptrace(PTRACE_SETREGS, pid, 0, &regs);
  // Standard-format xsave: the legacy area holds xmm0..15 from byte 160.
  std::vector<uint8_t> xstate(64 * 1024);
  struct iovec iov = {xstate.data(), xstate.size()};
  if (ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, &iov) != 0) {
    return absl::InternalError("PTRACE_GETREGSET(NT_X86_XSTATE) failed");
  }
  xstate[160 + 8 * 16] ^= 0xff;
  if (ptrace(PTRACE_SETREGSET, pid, NT_X86_XSTATE, &iov) != 0) {
    return absl::InternalError("PTRACE_SETREGSET(NT_X86_XSTATE) failed");
  }
  ptrace(PTRACE_DETACH, pid, 0, 0);
  return absl::OkStatus();
}

// What a restore that loses a page would do: flips a byte in the middle of
// the program's 64 MiB data. Its anonymous mappings, made top-down, merge
// into one VMA: [checksum page][16 MiB never written][64 MiB data].
absl::Status ChangeMemory(pid_t pid) {
  std::ifstream maps(absl::StrCat("/proc/", pid, "/maps"));
  std::string line;
  while (std::getline(maps, line)) {
    unsigned long start = 0, end = 0, inode = 1;
    char perms[8] = {0};
    int path_at = 0;
    if (sscanf(line.c_str(), "%lx-%lx %7s %*s %*s %lu %n", &start, &end, perms, &inode, &path_at) <
        4) {
      continue;
    }
    if (end - start < (64ul << 20) || std::string(perms) != "rw-p" || inode != 0 ||
        static_cast<size_t>(path_at) < line.size()) {
      continue;
    }
    uint8_t byte = 0;
    void* at = reinterpret_cast<void*>(end - (32ul << 20) + 123);
    struct iovec local = {&byte, 1};
    struct iovec remote = {at, 1};
    if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != 1) {
      return absl::InternalError("process_vm_readv failed");
    }
    byte ^= 0x5a;
    if (process_vm_writev(pid, &local, 1, &remote, 1, 0) != 1) {
      return absl::InternalError("process_vm_writev failed");
    }
    return absl::OkStatus();
  }
  return absl::NotFoundError("no rw-p anonymous mapping of 64 MiB or more");
}

}  // namespace

BOOST_AUTO_TEST_CASE(counter) {
  Session s("counter");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(memory) {
  Session s("memory");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(registers) {
  Session s("registers");
  RunStandalone(s);
}

// The vector paths a smaller CPU would take, forced on this one.
BOOST_AUTO_TEST_CASE(registers_avx2_and_sse) {
  for (const char* level : {"avx2", "sse"}) {
    SessionOptions options;
    options.env = {absl::StrCat("CRPP_E2E_REGISTERS_LEVEL=", level)};
    Session s(absl::StrCat("registers_", level), "registers", options);
    RunStandalone(s);
    BOOST_CHECK_MESSAGE(s.last_verdict().find(absl::StrCat("level=", level)) != std::string::npos,
                        s.last_verdict());
  }
}

BOOST_AUTO_TEST_CASE(signals) {
  Session s("signals");
  RunStandalone(s, /*send_sigusr2=*/true);
}

BOOST_AUTO_TEST_CASE(timers) {
  Session s("timers");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(files) {
  Session s("files");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(events) {
  Session s("events");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(mappings) {
  Session s("mappings");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(epoll_nested) {
  Session s("epoll_nested");
  RunStandalone(s);
}

// (The fanotify program has no case here: its mount and filesystem marks
// need CAP_SYS_ADMIN in the initial user namespace, which the sandbox's is
// not. The e2e tests run it.)

// What a restore that adds a watch would do: the program's outer epoll (the
// one with 8 targets) gets a ninth, added from outside through copies of the
// epoll and of another of its fds (pidfd_getfd).
BOOST_AUTO_TEST_CASE(epoll_nested_catches_an_extra_watch) {
  Session s("epoll_nested_extra_watch", "epoll_nested");
  E2E_REQUIRE_OK(s, s.Start());
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, s.pid(), 0));
  BOOST_REQUIRE(pidfd >= 0);
  const std::string proc = absl::StrCat("/proc/", s.pid());
  int outer = -1, other = -1;
  for (const auto& e : std::filesystem::directory_iterator(proc + "/fd")) {
    const int fd = std::stoi(e.path().filename().string());
    std::error_code ec;
    const std::string link = std::filesystem::read_symlink(e.path(), ec).string();
    std::ifstream info(absl::StrCat(proc, "/fdinfo/", fd));
    std::string line;
    int targets = 0;
    while (std::getline(info, line)) targets += line.rfind("tfd:", 0) == 0;
    if (link == "anon_inode:[eventpoll]" && targets == 8) {
      outer = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
    } else if (link.rfind("pipe:", 0) == 0 && other < 0) {
      other = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
    }
  }
  close(pidfd);
  BOOST_REQUIRE_MESSAGE(outer >= 0 && other >= 0, "no outer epoll or pipe in " << proc << "/fd");
  struct epoll_event ev = {};
  ev.events = EPOLLOUT;
  BOOST_REQUIRE(epoll_ctl(outer, EPOLL_CTL_ADD, other, &ev) == 0);
  close(outer);
  RequireFailVerdict(s, {"outer epoll targets:", "outer epoll: 9 targets"});
  close(other);
}

BOOST_AUTO_TEST_CASE(ghost) {
  Session s("ghost");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(locks) {
  Session s("locks");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(registers_catch_a_changed_register) {
  Session s("registers_changed", "registers");
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, ChangeRegisters(s.pid()));
  usleep(100 * 1000);
  RequireFailVerdict(s, {"rbx changed", "rbx is", "mm8 bytes 0..7"});
}

BOOST_AUTO_TEST_CASE(fifo) {
  Session s("fifo");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(shmem) {
  Session s("shmem");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(cow_memory) {
  Session s("cow_memory");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(inotify) {
  Session s("inotify");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(shared_files) {
  Session s("shared_files");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(pidfd) {
  Session s("pidfd");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(threads) {
  Session s("threads");
  RunStandalone(s);
}

BOOST_AUTO_TEST_CASE(unix_server) {
  Session s("unix_server");
  RunStandalone(s);
}

// What a restore that loses a queued byte would do: one byte of the 3000
// waiting in the server's accepted connection is read away from outside
// (through a copy of the socket taken with pidfd_getfd).
BOOST_AUTO_TEST_CASE(unix_server_catches_a_lost_byte) {
  Session s("unix_server_lost_byte", "unix_server");
  E2E_REQUIRE_OK(s, s.Start());
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, s.pid(), 0));
  BOOST_REQUIRE(pidfd >= 0);
  std::ifstream path_file(s.out_dir() + "/socket_path");
  std::string path;
  std::getline(path_file, path);
  bool taken = false;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(s.pid()) + "/fd")) {
    const int fd = static_cast<int>(
        syscall(SYS_pidfd_getfd, pidfd, std::stoi(e.path().filename().string()), 0));
    if (fd < 0) continue;
    sockaddr_un name{};
    socklen_t len = sizeof name;
    int listening = 1;
    socklen_t ol = sizeof listening;
    char byte;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&name), &len) == 0 &&
        name.sun_family == AF_UNIX && path == name.sun_path &&
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ol) == 0 && listening == 0) {
      taken = recv(fd, &byte, 1, MSG_DONTWAIT) == 1;
    }
    close(fd);
    if (taken) break;
  }
  close(pidfd);
  BOOST_REQUIRE_MESSAGE(taken, "no accepted connection bound to " << path);
  RequireFailVerdict(s, {"stream: 2999 bytes queued, want the 3000 sent"});
}

BOOST_AUTO_TEST_CASE(pty) {
  Session s("pty");
  RunStandalone(s);
}

namespace {

// Reads what one read() gives from a copy (pidfd_getfd) of the first fd of
// PID whose /proc link is LINK (a prefix for "/dev/pts/"), or "" when none.
std::string ReadFromCopy(pid_t pid, const std::string& link) {
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return "";
  std::string got;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (ec || target.rfind(link, 0) != 0) continue;
    const int fd = static_cast<int>(
        syscall(SYS_pidfd_getfd, pidfd, std::stoi(e.path().filename().string()), 0));
    if (fd < 0) continue;
    char buf[64];
    const ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n > 0) got.assign(buf, static_cast<size_t>(n));
    break;
  }
  close(pidfd);
  return got;
}

}  // namespace

// What a restore that loses the bytes queued in a pty would do: what waits
// on the master (read through a copy of it) or one line waiting on the slave.
BOOST_AUTO_TEST_CASE(pty_catches_lost_bytes) {
  {
    Session s("pty_lost_master_bytes", "pty");
    E2E_REQUIRE_OK(s, s.Start());
    BOOST_REQUIRE(!ReadFromCopy(s.pid(), "/dev/ptmx").empty());
    RequireFailVerdict(s, {"the master read \"\" (0 bytes)"});
  }
  {
    Session s("pty_lost_slave_line", "pty");
    E2E_REQUIRE_OK(s, s.Start());
    BOOST_REQUIRE(ReadFromCopy(s.pid(), "/dev/pts/") == "line-one\n");
    RequireFailVerdict(s, {"grandchild read \"at-end@\" from the slave, not \"line-one"});
  }
}

// A worker thread (the second thread created: worker-1) whose registers a
// restore got wrong.
BOOST_AUTO_TEST_CASE(threads_catch_a_changed_register) {
  Session s("threads_changed", "threads");
  E2E_REQUIRE_OK(s, s.Start());
  std::vector<pid_t> tids;
  for (const auto& e :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", s.pid(), "/task"))) {
    tids.push_back(static_cast<pid_t>(std::stoi(e.path().filename().string())));
  }
  std::sort(tids.begin(), tids.end());
  BOOST_REQUIRE_EQUAL(tids.size(), 11u);
  E2E_REQUIRE_OK(s, ChangeRegisters(tids[2]));
  usleep(100 * 1000);
  RequireFailVerdict(s, {"worker-1: rbx changed", "worker-1: rbx is"});
}

BOOST_AUTO_TEST_CASE(memory_catches_a_changed_byte) {
  Session s("memory_changed", "memory");
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, ChangeMemory(s.pid()));
  RequireFailVerdict(s, {"!= variable", "!= copy in page"});
}

BOOST_AUTO_TEST_CASE(signals_catch_a_handler_that_never_runs) {
  Session s("signals_no_usr2", "signals");
  E2E_REQUIRE_OK(s, s.Start());
  RequireFailVerdict(s, {"the SIGUSR2 handler did not run"});
}

// ExpectStopped/ExpectRunning, which the dump -s test relies on.
BOOST_AUTO_TEST_CASE(harness_tells_stopped_from_running) {
  Session s("stopped", "counter");
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.Signal(SIGSTOP));
  usleep(50 * 1000);
  E2E_REQUIRE_OK(s, s.ExpectStopped());
  BOOST_CHECK(!s.ExpectRunning().ok());
  E2E_REQUIRE_OK(s, s.Signal(SIGCONT));
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  BOOST_CHECK(!s.ExpectStopped().ok());
  E2E_REQUIRE_OK(s, s.Verdict());
}

// A criu that fails is reported with its output, and the program it was
// given is killed and reaped when the session ends. The criu here is
// /bin/false, so that this test does not wait for dump to work.
BOOST_AUTO_TEST_CASE(harness_reports_a_failed_dump_and_cleans_up) {
  setenv("CRPP_E2E_CRIU", "/bin/false", 1);
  pid_t pid = 0;
  {
    Session s("failed_dump", "counter");
    E2E_REQUIRE_OK(s, s.Start());
    pid = s.pid();
    absl::Status dump = s.Dump({"--no-such-option-at-all"});
    BOOST_REQUIRE(!dump.ok());
    BOOST_CHECK_MESSAGE(dump.message().find("criu dump ended with exit status") == 0,
                        dump.ToString());
    const std::string diagnostics = s.Diagnostics();
    BOOST_CHECK_MESSAGE(diagnostics.find("no-such-option-at-all") != std::string::npos,
                        diagnostics);
    BOOST_CHECK_MESSAGE(
        diagnostics.find("---- " + s.dir() + "/criu-1-dump.out") != std::string::npos, diagnostics);
    E2E_REQUIRE_OK(s, s.ExpectRunning());
  }
  unsetenv("CRPP_E2E_CRIU");
  BOOST_CHECK_MESSAGE(kill(pid, 0) != 0 && errno == ESRCH, "pid " << pid << " survived");
}
