// A failed dump must leave every target running exactly as before: nothing
// lost. Programs of tests/e2e/programs are dumped in this process with
// crpp::Dump, which is made to fail in every way we can cause:
// - on purpose right after each plugin (DumpRequest::fail_after);
// - at each syscall the dump runs inside the target, one after the other
//   (the ptrace layer's test hook fails the Nth one), also with a signal sent
//   to the target in the middle of the dump: it must not be lost;
// - refused before the target is touched: no such pid, a zombie, what the
//   precheck refuses (a fanotify mark on a deleted file, seccomp, a child's TCP
//   socket, a shared fd table, a UNIX peer outside the tree, an epoll watching
//   a file another process added or that only another process holds), an
//   images directory
//   that does not exist or cannot be written, an unknown fail_after;
// - while writing the images: a full disk, an image path taken by a directory.
// After each, the program must run (not stopped, its loop advancing), look the
// same from outside (memory map, signal masks, no tracer: OutsideView) and
// give an OK verdict, which checks its registers, memory and signal state from
// the inside.
//
// Each dump's log (-v4) goes to criu-inprocess-*.log in the session's
// directory, which the diagnostics of a failure show.
#define BOOST_TEST_MODULE dump_faults
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/dump/dump.h"
#include "core/log.h"
#include "core/ptrace/task.h"
#include "resources/default_resources.h"
#include "tests/e2e/harness.h"

namespace {

using crpp::e2e::Session;
using crpp::e2e::SessionOptions;
using crpp::ptrace::Task;

// The plugins of the default registry in the order they dump, each with an
// image it writes and no plugin before it does ("" for the plugins whose
// entries go to files.img only).
struct PluginImage {
  std::string_view plugin;
  std::string_view image;  // "PID" stands for the target's pid; "": none of its own
};
constexpr PluginImage kPlugins[] = {
    {"inventory", "inventory.img"},
    {"tree", "pstree.img"},
    {"pipes", "pipes-data.img"},
    {"fifos", "fifo-data.img"},
    {"unix", "sk-queues.img"},
    {"eventfd", ""},
    {"timerfd", ""},
    {"signalfd", ""},
    {"eventpoll", ""},
    {"shmem", "memfd.img"},
    {"inotify", ""},
    {"fanotify", ""},
    {"tty", ""},  // tty-info.img only when the tree holds a pty
    {"ghosts", "remap-fpath.img"},
    {"fds", "fdinfo-1.img"},
    {"eventpoll-targets", ""},
    {"memory", "mm-PID.img"},
    {"core", "core-PID.img"},
    {"file-locks", "filelocks.img"},
    {"files", "files.img"},
};

std::string ImageName(const PluginImage& p, pid_t pid) {
  std::string name(p.image);
  if (size_t at = name.find("PID"); at != std::string::npos) {
    name.replace(at, 3, std::to_string(pid));
  }
  return name;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// A new, empty directory NAME in the session's directory.
std::string FreshDir(const Session& s, const std::string& name) {
  const std::string dir = s.dir() + "/" + name;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  BOOST_REQUIRE_MESSAGE(!ec, "cannot create " << dir << ": " << ec.message());
  return dir;
}

crpp::DumpRequest Request(const Session& s, const std::string& images_dir) {
  crpp::DumpRequest req;
  req.pid = s.pid();
  req.images_dir = images_dir;
  return req;
}

// crpp::Dump with its log at -v4 in the session's criu-inprocess-WHAT.log.
struct Dumped {
  absl::Status status;
  std::string log;
};
Dumped DumpLogged(const Session& s, const crpp::DumpRequest& req, const std::string& what) {
  const std::string log_path = absl::StrCat(s.dir(), "/criu-inprocess-", what, ".log");
  crpp::log::SetVerbosity(4);
  BOOST_REQUIRE(crpp::log::ToFile(log_path).ok());
  absl::StatusOr<crpp::DumpStats> stats = crpp::Dump(req);
  crpp::log::ToStderr();
  crpp::log::SetVerbosity(crpp::log::kDefaultVerbosity);
  return {stats.status(), ReadFile(log_path)};
}

// This process's open fds: a failed dump must not leave the dumper any either.
std::string OwnFds() {
  std::vector<std::string> fds;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    fds.push_back(e.path().filename().string() + " -> " +
                  std::filesystem::read_symlink(e.path(), ec).string());
  }
  std::sort(fds.begin(), fds.end());
  return absl::StrJoin(fds, "\n");
}

// The log line the dump driver writes once the target is stopped.
bool Froze(const Dumped& d) { return absl::StrContains(d.log, " frozen in "); }

// Starts the session's program and returns how it looks from outside once
// its loop runs.
std::string StartAndView(Session& s) {
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  absl::StatusOr<std::string> view = crpp::e2e::OutsideView(s.pid());
  E2E_REQUIRE_OK(s, view.status());
  return *view;
}

// The dump failed with CODE (if given) and a message holding WANTED.
void RequireFailed(Session& s, const Dumped& d, std::optional<absl::StatusCode> code,
                   const std::string& wanted) {
  BOOST_REQUIRE_MESSAGE(!d.status.ok(), "the dump succeeded\n" << s.Diagnostics());
  if (code) {
    BOOST_CHECK_MESSAGE(d.status.code() == *code,
                        "want code " << absl::StatusCodeToString(*code) << ", got " << d.status);
  }
  BOOST_REQUIRE_MESSAGE(absl::StrContains(d.status.message(), wanted),
                        "'" << wanted << "' not in: " << d.status << "\n"
                            << s.Diagnostics());
}

// After a failed dump: the program runs, and nothing seen from outside
// changed since BEFORE.
void RequireUntouched(Session& s, const std::string& before) {
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  E2E_REQUIRE_OK(s, crpp::e2e::ExpectOutsideView(s.pid(), before));
}

// The program is in a group stop: stopping takes the kernel a moment after
// SIGSTOP (or after the dump lets a task with a stop in effect go).
void RequireStopped(Session& s) {
  const std::string stat_path = absl::StrCat("/proc/", s.pid(), "/stat");
  for (int waited = 0; waited < 2000 && !absl::StrContains(ReadFile(stat_path), ") T ");
       waited += 10) {
    usleep(10 * 1000);
  }
  E2E_REQUIRE_OK(s, s.ExpectStopped());
}

// The program's own verdict is OK. The signals program wants a SIGUSR2 first
// (unless one was sent already).
void RequireOkVerdict(Session& s, bool send_sigusr2 = false) {
  if (send_sigusr2) {
    E2E_REQUIRE_OK(s, s.Signal(SIGUSR2));
    usleep(50 * 1000);
  }
  E2E_REQUIRE_OK(s, s.Verdict());
  std::cout << s.dir() << ": " << s.last_verdict() << std::endl;
}

// While it lives, the ptrace layer fails the Nth syscall a dump injects into
// its target (counting from 1), and calls ON_EACH(count, tid) before each.
class FailNthSyscall {
 public:
  explicit FailNthSyscall(int n, std::function<void(int, pid_t)> on_each = nullptr)
      : n_(n), on_each_(std::move(on_each)) {
    Task::SetSyscallHookForTesting([this](pid_t tid, long nr) -> absl::Status {
      ++count_;
      if (on_each_) on_each_(count_, tid);
      if (count_ != n_) return absl::OkStatus();
      return absl::UnavailableError(
          absl::StrCat("injected failure of syscall #", n_, " (number ", nr, ")"));
    });
  }
  ~FailNthSyscall() { Task::SetSyscallHookForTesting(nullptr); }
  FailNthSyscall(const FailNthSyscall&) = delete;
  FailNthSyscall& operator=(const FailNthSyscall&) = delete;

  // Syscalls the dump tried to inject so far.
  int count() const { return count_; }
  std::string message() const { return absl::StrCat("injected failure of syscall #", n_, " "); }

 private:
  const int n_;
  std::function<void(int, pid_t)> on_each_;
  int count_ = 0;
};

// fail_after=PLUGIN for each plugin, each on a fresh PROGRAM.
void FailAfterEachPlugin(const std::string& program, bool send_sigusr2 = false) {
  const std::string own_fds = OwnFds();
  for (size_t i = 0; i < std::size(kPlugins); ++i) {
    const std::string plugin(kPlugins[i].plugin);
    BOOST_TEST_CONTEXT("fail_after=" << plugin) {
      Session s(absl::StrCat(program, "_fail_after_", plugin), program);
      const std::string before = StartAndView(s);
      crpp::DumpRequest req = Request(s, FreshDir(s, "images"));
      req.fail_after = plugin;
      req.file_locks = true;  // the locks program holds some
      Dumped d = DumpLogged(s, req, plugin);
      RequireFailed(s, d, absl::StatusCode::kAborted, "dump failed on purpose after " + plugin);
      BOOST_CHECK_MESSAGE(Froze(d), "the target was never frozen: the log says\n" << d.log);
      // The dump stopped right after PLUGIN: the images up to its own are
      // there, no later plugin ran.
      for (size_t j = 0; j < std::size(kPlugins); ++j) {
        if (kPlugins[j].image.empty()) continue;  // its entries go into files.img
        const std::string image = ImageName(kPlugins[j], s.pid());
        BOOST_CHECK_MESSAGE(Exists(req.images_dir + "/" + image) == (j <= i),
                            image << (j <= i ? " is missing" : " was written"));
      }
      RequireUntouched(s, before);
      RequireOkVerdict(s, send_sigusr2);
    }
  }
  BOOST_TEST(OwnFds() == own_fds, "the dumps left fds open in the dumper");
}

// Fails the 1st, 2nd, ... syscall a dump injects into one PROGRAM, one per
// dump, until a dump has no Nth syscall (it gets through and, with -R, leaves
// the program running) or N is MAX_N. A dump may also get through a failed
// syscall that only reads something optional (PR_GET_DUMPABLE): what matters
// is that the program is left intact each time.
void FailEachInjectedSyscall(const std::string& program, bool send_sigusr2, int max_n) {
  Session s(program + "_syscall_faults", program);
  const std::string before = StartAndView(s);
  const std::string images = FreshDir(s, "images");
  const std::string own_fds = OwnFds();
  int failed = 0;
  std::vector<int> tolerated;
  bool got_through = false;
  int n = 1;
  for (; n <= max_n && !got_through; ++n) {
    BOOST_TEST_CONTEXT("failing injected syscall #" << n) {
      FailNthSyscall fault(n);
      crpp::DumpRequest req = Request(s, images);
      req.leave_running = true;
      Dumped d = DumpLogged(s, req, "syscall-" + std::to_string(n));
      if (!d.status.ok()) {
        RequireFailed(s, d, absl::StatusCode::kUnavailable, fault.message());
        ++failed;
      } else if (fault.count() >= n) {
        tolerated.push_back(n);
      } else {
        got_through = true;
      }
      RequireUntouched(s, before);
    }
  }
  std::cout << s.dir() << ": " << n - 1 << " dumps: " << failed << " failed at their Nth injected "
            << "syscall, " << tolerated.size() << " got through a failed one (#"
            << absl::StrJoin(tolerated, ", #") << ")"
            << (got_through ? ", the last had fewer syscalls" : "") << std::endl;
  BOOST_TEST(failed >= std::min(max_n - 1, 10));
  BOOST_TEST(OwnFds() == own_fds, "the dumps left fds open in the dumper");
  RequireOkVerdict(s, send_sigusr2);
}

// A read-only file system at DIR, in a mount namespace of this process's own:
// nothing outside the test sees it, and it goes away with the process.
absl::Status MountReadOnly(const std::string& dir) {
  if (unshare(CLONE_NEWNS) != 0) {
    return absl::InternalError(absl::StrCat("unshare(CLONE_NEWNS): ", strerror(errno)));
  }
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return absl::InternalError(absl::StrCat("making / private: ", strerror(errno)));
  }
  if (mount("crpp-readonly", dir.c_str(), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            "size=64k") != 0) {
    return absl::InternalError(absl::StrCat("mounting a read-only tmpfs: ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

// The table above lists every plugin of the default registry, in stage order:
// a new plugin gets its fail_after case here.
BOOST_AUTO_TEST_CASE(every_plugin_is_covered) {
  using Plugins = crpp::DefaultResources;
  const auto names = Plugins::names();
  const auto order = Plugins::StageOrder();
  BOOST_REQUIRE_EQUAL(std::size(kPlugins), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    BOOST_TEST(kPlugins[i].plugin == names[order[i]]);
  }
}

BOOST_AUTO_TEST_CASE(fail_after_each_plugin_registers) { FailAfterEachPlugin("registers"); }
BOOST_AUTO_TEST_CASE(fail_after_each_plugin_counter) { FailAfterEachPlugin("counter"); }
BOOST_AUTO_TEST_CASE(fail_after_each_plugin_memory) { FailAfterEachPlugin("memory"); }
BOOST_AUTO_TEST_CASE(fail_after_each_plugin_signals) {
  FailAfterEachPlugin("signals", /*send_sigusr2=*/true);
}
BOOST_AUTO_TEST_CASE(fail_after_each_plugin_threads) { FailAfterEachPlugin("threads"); }
// Sockets with data queued everywhere: a failed dump must not lose a byte
// nor leave a peek offset behind.
BOOST_AUTO_TEST_CASE(fail_after_each_plugin_unix_server) { FailAfterEachPlugin("unix_server"); }
// Every event-style fd, shared with a child: the events program's verdict
// reads the counters, the ticks and the pending signal from the inside.
BOOST_AUTO_TEST_CASE(fail_after_each_plugin_events) { FailAfterEachPlugin("events"); }
// Deleted files (one shared with a child) and file locks: still there, held
// and intact after each failed dump.
BOOST_AUTO_TEST_CASE(fail_after_each_plugin_ghost) { FailAfterEachPlugin("ghost"); }
BOOST_AUTO_TEST_CASE(fail_after_each_plugin_locks) { FailAfterEachPlugin("locks"); }
// The tty plugin reads the bytes queued in the pty out and puts them back:
// after a dump that fails later the program still finds them all.
BOOST_AUTO_TEST_CASE(fail_after_each_plugin_pty) { FailAfterEachPlugin("pty"); }

// --link-remap links a deleted file back at dump: a dump that fails after
// that (at its very end) removes the link again.
BOOST_AUTO_TEST_CASE(failed_dump_removes_link_remap_links) {
  SessionOptions options;
  options.env = {"CRPP_E2E_GHOST_LINKED=1"};
  Session s("ghost_linked_fail_after_files", "ghost", options);
  const std::string before = StartAndView(s);
  crpp::DumpRequest req = Request(s, FreshDir(s, "images"));
  req.link_remap = true;
  req.fail_after = "files";
  Dumped d = DumpLogged(s, req, "files");
  RequireFailed(s, d, absl::StatusCode::kAborted, "dump failed on purpose after files");
  BOOST_CHECK_MESSAGE(d.log.find("linked back as") != std::string::npos, d.log);
  for (const auto& e : std::filesystem::directory_iterator(s.out_dir())) {
    BOOST_TEST(!e.path().filename().string().starts_with("link_remap"), e.path());
  }
  RequireUntouched(s, before);
  RequireOkVerdict(s);
}

// Every injected syscall of a whole dump, one failure per dump.
BOOST_AUTO_TEST_CASE(fail_each_injected_syscall_registers) {
  FailEachInjectedSyscall("registers", false, 1000);
}
BOOST_AUTO_TEST_CASE(fail_each_injected_syscall_signals) {
  FailEachInjectedSyscall("signals", true, 1000);
}
// Syscalls run in each thread too (on the main thread's scratch page).
BOOST_AUTO_TEST_CASE(fail_each_injected_syscall_threads) {
  FailEachInjectedSyscall("threads", false, 1000);
}
// The memory plugin's syscalls come first; the pages are read after them.
BOOST_AUTO_TEST_CASE(fail_first_injected_syscalls_memory) {
  FailEachInjectedSyscall("memory", false, 3);
}

// A signal that arrives while the dump holds the target (all signals blocked)
// stays pending and is delivered once the failed dump lets it go.
BOOST_AUTO_TEST_CASE(signal_during_failed_dump_is_delivered) {
  Session s("signal_during_failed_dump", "signals");
  const std::string before = StartAndView(s);
  {
    FailNthSyscall fault(10, [](int count, pid_t tid) {
      if (count == 5) kill(tid, SIGUSR2);
    });
    Dumped d = DumpLogged(s, Request(s, FreshDir(s, "images")), "signal");
    RequireFailed(s, d, absl::StatusCode::kUnavailable, fault.message());
  }
  RequireUntouched(s, before);
  // No second SIGUSR2: the verdict requires that the handler ran.
  RequireOkVerdict(s, /*send_sigusr2=*/false);
}

// SIGSTOP cannot be blocked: sent while the dump holds the target, it must
// still stop it once the dump lets it go, failed or not.
BOOST_AUTO_TEST_CASE(sigstop_during_failed_dump_is_kept) {
  Session s("sigstop_during_failed_dump", "counter");
  const std::string before = StartAndView(s);
  {
    FailNthSyscall fault(10, [](int count, pid_t tid) {
      if (count == 5) kill(tid, SIGSTOP);
    });
    Dumped d = DumpLogged(s, Request(s, FreshDir(s, "images")), "sigstop");
    RequireFailed(s, d, absl::StatusCode::kUnavailable, fault.message());
  }
  RequireStopped(s);
  E2E_REQUIRE_OK(s, s.Signal(SIGCONT));
  RequireUntouched(s, before);
  RequireOkVerdict(s);
}

BOOST_AUTO_TEST_CASE(sigstop_during_dump_leave_running_is_kept) {
  Session s("sigstop_during_dump_leave_running", "counter");
  const std::string before = StartAndView(s);
  {
    FailNthSyscall no_fault(0, [](int count, pid_t tid) {
      if (count == 5) kill(tid, SIGSTOP);
    });
    crpp::DumpRequest req = Request(s, FreshDir(s, "images"));
    req.leave_running = true;
    Dumped d = DumpLogged(s, req, "sigstop");
    E2E_REQUIRE_OK(s, d.status);
  }
  RequireStopped(s);
  E2E_REQUIRE_OK(s, s.Signal(SIGCONT));
  RequireUntouched(s, before);
  RequireOkVerdict(s);
}

// A target that was stopped (SIGSTOP) before the dump is still stopped after
// the failed dump, and runs on when continued.
BOOST_AUTO_TEST_CASE(stopped_target_stays_stopped) {
  Session s("stopped_target_stays_stopped", "counter");
  const std::string before = StartAndView(s);
  E2E_REQUIRE_OK(s, s.Signal(SIGSTOP));
  RequireStopped(s);
  crpp::DumpRequest req = Request(s, FreshDir(s, "images"));
  req.fail_after = "core";
  Dumped d = DumpLogged(s, req, "stopped");
  RequireFailed(s, d, absl::StatusCode::kAborted, "dump failed on purpose after core");
  RequireStopped(s);
  E2E_REQUIRE_OK(s, s.Signal(SIGCONT));
  RequireUntouched(s, before);
  RequireOkVerdict(s);
}

BOOST_AUTO_TEST_CASE(no_such_pid) {
  Session s("no_such_pid", "counter");
  const std::string images = FreshDir(s, "images");
  // A pid that existed a moment ago.
  const pid_t gone = fork();
  BOOST_REQUIRE(gone >= 0);
  if (gone == 0) _exit(0);
  BOOST_REQUIRE_EQUAL(waitpid(gone, nullptr, 0), gone);
  crpp::DumpRequest req;
  req.pid = gone;
  req.images_dir = images;
  Dumped d = DumpLogged(s, req, "gone");
  RequireFailed(s, d, absl::StatusCode::kNotFound, absl::StrCat("pid ", gone, ": no such process"));
  req.pid = 0;
  RequireFailed(s, DumpLogged(s, req, "zero"), absl::StatusCode::kInvalidArgument,
                "needs the pid of a task");
  req.pid = getpid();
  RequireFailed(s, DumpLogged(s, req, "self"), absl::StatusCode::kInvalidArgument,
                "cannot dump the dumping process itself");
  BOOST_TEST(std::filesystem::is_empty(images));
}

// A zombie is refused and stays a zombie: its exit status is not lost.
BOOST_AUTO_TEST_CASE(zombie_keeps_its_exit_status) {
  Session s("zombie", "counter");
  const pid_t zombie = fork();
  BOOST_REQUIRE(zombie >= 0);
  if (zombie == 0) _exit(7);
  std::string stat;
  for (int i = 0; i < 1000; ++i) {
    stat = ReadFile(absl::StrCat("/proc/", zombie, "/stat"));
    if (absl::StrContains(stat, ") Z ")) break;
    usleep(1000);
  }
  BOOST_REQUIRE_MESSAGE(absl::StrContains(stat, ") Z "), "not a zombie: " << stat);
  crpp::DumpRequest req;
  req.pid = zombie;
  req.images_dir = FreshDir(s, "images");
  Dumped d = DumpLogged(s, req, "zombie");
  RequireFailed(s, d, absl::StatusCode::kFailedPrecondition, "is a zombie");
  BOOST_TEST(!Froze(d));
  int status = 0;
  BOOST_REQUIRE_EQUAL(waitpid(zombie, &status, WNOHANG), zombie);
  BOOST_TEST(crpp::e2e::DescribeWaitStatus(status) == "exit status 7");
}

// What the precheck refuses is refused before the target is stopped: no
// image is written, the log never says "frozen", the program runs on.
void RefusedAtPrecheck(const std::string& what, const std::string& reason,
                       const std::vector<std::string>& env = {}) {
  SessionOptions options;
  options.env = {"CRPP_E2E_REFUSED=" + what};
  options.env.insert(options.env.end(), env.begin(), env.end());
  Session s("refused_" + what, "refused", options);
  const std::string before = StartAndView(s);
  crpp::DumpRequest req = Request(s, FreshDir(s, "images"));
  Dumped d = DumpLogged(s, req, what);
  RequireFailed(s, d, absl::StatusCode::kUnimplemented, reason);
  BOOST_CHECK_MESSAGE(!Froze(d), "the target was frozen: the log says\n" << d.log);
  BOOST_TEST(std::filesystem::is_empty(req.images_dir));
  RequireUntouched(s, before);
  RequireOkVerdict(s);
}

// A fanotify mark on a file deleted since: no path to mark again.
BOOST_AUTO_TEST_CASE(refused_fanotify_deleted) {
  RefusedAtPrecheck("fanotify_deleted", "a fanotify mark is on ");
}
BOOST_AUTO_TEST_CASE(refused_seccomp) { RefusedAtPrecheck("seccomp", "runs under seccomp"); }
// The child's TCP socket: UNIX sockets are dumped, other families not yet.
BOOST_AUTO_TEST_CASE(refused_child) { RefusedAtPrecheck("child", "is a TCP socket (socket:["); }
// A child sharing its parent's fd table is dumped; two siblings sharing one
// their parent does not, or a task and its grandparent sharing one its
// parent does not, are refused.
BOOST_AUTO_TEST_CASE(refused_shared_fds_siblings) {
  RefusedAtPrecheck("shared_fds_siblings",
                    "share their fd table (CLONE_FILES) but not as a child with its parent's");
}
BOOST_AUTO_TEST_CASE(refused_shared_fds_grandparent) {
  RefusedAtPrecheck("shared_fds_grandparent",
                    "share their fd table (CLONE_FILES) but not as a child with its parent's");
}
// Two processes sharing memory and signal handlers (the kernel allows
// CLONE_SIGHAND only with CLONE_VM), and two sharing memory only.
BOOST_AUTO_TEST_CASE(refused_shared_vm_sighand) {
  RefusedAtPrecheck("shared_vm_sighand",
                    "share their memory (CLONE_VM) and their signal handlers (CLONE_SIGHAND)");
}
BOOST_AUTO_TEST_CASE(refused_shared_vm) {
  RefusedAtPrecheck("shared_vm", "share their address space (CLONE_VM");
}

// A UNIX socket connected to one outside the dumped tree (a listening
// socket of this test's, its connection not accepted) is refused before the
// target is stopped, naming the pid, the fd and the peer's name.
BOOST_AUTO_TEST_CASE(refused_unix_peer_outside_tree) {
  const std::string path = absl::StrCat("/tmp/crpp-dump-faults-", getpid(), ".sock");
  unlink(path.c_str());
  const int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  BOOST_REQUIRE(listener >= 0);
  BOOST_REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  BOOST_REQUIRE(listen(listener, 4) == 0);
  {
    SessionOptions options;
    options.env = {"CRPP_E2E_REFUSED=unix_peer", "CRPP_E2E_UNIX_PEER=" + path};
    Session s("refused_unix_peer", "refused", options);
    const std::string before = StartAndView(s);
    crpp::DumpRequest req = Request(s, FreshDir(s, "images"));
    Dumped d = DumpLogged(s, req, "unix_peer");
    RequireFailed(s, d, absl::StatusCode::kUnimplemented, "which no task of the dumped tree holds");
    BOOST_CHECK_MESSAGE(
        absl::StrContains(d.status.message(), absl::StrCat("pid ", s.pid(), " fd ")),
        "the error names no pid and fd: " << d.status);
    BOOST_CHECK_MESSAGE(absl::StrContains(d.status.message(), "(" + path + ")"),
                        "the error does not name the peer: " << d.status);
    BOOST_CHECK_MESSAGE(!Froze(d), "the target was frozen: the log says\n" << d.log);
    BOOST_TEST(std::filesystem::is_empty(req.images_dir));
    RequireUntouched(s, before);
    RequireOkVerdict(s);
  }
  close(listener);
  unlink(path.c_str());
}

// An epoll shared with a child that added a target of its own under an fd
// number the epoll's first holder does not have.
BOOST_AUTO_TEST_CASE(refused_epoll_foreign_target) {
  RefusedAtPrecheck("epoll_foreign", "is an epoll watching a file registered as fd 100");
}
// An epoll watching a file its first holder closed, which only a child
// holds now.
BOOST_AUTO_TEST_CASE(refused_epoll_closed_target) {
  RefusedAtPrecheck("epoll_closed", "holds under no fd");
}
// A pty of this test's: its master stays outside the dumped tree.
class OutsidePty {
 public:
  OutsidePty() {
    master_ = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    BOOST_REQUIRE(master_ >= 0 && grantpt(master_) == 0 && unlockpt(master_) == 0);
    path_ = ptsname(master_);
  }
  ~OutsidePty() { close(master_); }
  OutsidePty(const OutsidePty&) = delete;
  OutsidePty& operator=(const OutsidePty&) = delete;
  const std::string& path() const { return path_; }

 private:
  int master_ = -1;
  std::string path_;
};

BOOST_AUTO_TEST_CASE(refused_pty_slave_outside_tree) {
  OutsidePty pty;
  RefusedAtPrecheck("pty_slave",
                    "is " + pty.path() + ", a pty slave whose master is not in the dumped tree",
                    {"CRPP_E2E_PTY=" + pty.path()});
}
// A session leader whose controlling terminal restore could not give back.
BOOST_AUTO_TEST_CASE(refused_pty_ctty_outside_tree) {
  OutsidePty pty;
  RefusedAtPrecheck("pty_ctty", "leads its session, whose controlling terminal is a pty slave",
                    {"CRPP_E2E_PTY=" + pty.path()});
}
BOOST_AUTO_TEST_CASE(refused_pty_master_alone) {
  RefusedAtPrecheck("pty_master", "whose slave no task of the dumped tree holds");
}
BOOST_AUTO_TEST_CASE(refused_deleted_dir) {
  RefusedAtPrecheck("deleted_dir", "/gone (deleted), removed while open: not supported");
}
BOOST_AUTO_TEST_CASE(refused_linked_deleted) {
  RefusedAtPrecheck("linked_deleted", "other hard link(s): dump with --link-remap");
}
BOOST_AUTO_TEST_CASE(refused_big_ghost) {
  RefusedAtPrecheck("big_ghost",
                    "more than the ghost limit of 1048576 (raise it with --ghost-limit)");
}

// A request that cannot work is refused before the target is touched.
BOOST_AUTO_TEST_CASE(bad_request_refused_before_touching_target) {
  Session s("bad_request", "counter");
  const std::string before = StartAndView(s);
  crpp::DumpRequest req = Request(s, s.dir() + "/no/such/dir");
  auto refused = [&](const std::string& what, absl::StatusCode code, const std::string& reason) {
    BOOST_TEST_CONTEXT(what) {
      Dumped d = DumpLogged(s, req, what);
      RequireFailed(s, d, code, reason);
      BOOST_CHECK_MESSAGE(!Froze(d), "the target was frozen: the log says\n" << d.log);
      RequireUntouched(s, before);
    }
  };
  refused("nonexistent", absl::StatusCode::kInvalidArgument, "does not exist or is not writable");

  req.images_dir = s.dir() + "/a_file";
  std::ofstream(req.images_dir) << "not a directory\n";
  refused("file", absl::StatusCode::kInvalidArgument, "does not exist or is not writable");

  req.images_dir = FreshDir(s, "readonly");
  E2E_REQUIRE_OK(s, MountReadOnly(req.images_dir));
  refused("readonly", absl::StatusCode::kInvalidArgument, "does not exist or is not writable");
  BOOST_TEST(umount2(req.images_dir.c_str(), MNT_DETACH) == 0);

  req.images_dir = FreshDir(s, "images");
  req.fail_after = "no-such-plugin";
  refused("bad_fail_after", absl::StatusCode::kInvalidArgument,
          "no plugin is called \"no-such-plugin\"");
  BOOST_TEST(std::filesystem::is_empty(req.images_dir));
  RequireOkVerdict(s);
}

// The disk fills up while the pages are written: 64 MiB of the memory
// program's data must all still be there.
BOOST_AUTO_TEST_CASE(disk_full_while_writing_pages) {
  Session s("disk_full", "memory");
  const std::string before = StartAndView(s);
  crpp::DumpRequest req = Request(s, FreshDir(s, "images"));
  BOOST_REQUIRE(symlink("/dev/full", (req.images_dir + "/pages-1.img").c_str()) == 0);
  Dumped d = DumpLogged(s, req, "full");
  RequireFailed(s, d, std::nullopt, "No space left on device");
  BOOST_CHECK_MESSAGE(absl::StrContains(d.status.message(), "pages-1.img"),
                      "the error does not name the image: " << d.status);
  RequireUntouched(s, before);
  RequireOkVerdict(s);
}

// The last image cannot be created (its path is a directory): the dump fails
// after every syscall ran in the target, whose registers must be given back.
BOOST_AUTO_TEST_CASE(image_path_taken_by_directory) {
  Session s("image_path_taken", "registers");
  const std::string before = StartAndView(s);
  crpp::DumpRequest req = Request(s, FreshDir(s, "images"));
  const std::string core = absl::StrCat(req.images_dir, "/core-", s.pid(), ".img");
  BOOST_REQUIRE(mkdir(core.c_str(), 0755) == 0);
  Dumped d = DumpLogged(s, req, "taken");
  RequireFailed(s, d, std::nullopt, absl::StrCat("core-", s.pid(), ".img"));
  RequireUntouched(s, before);
  RequireOkVerdict(s);
}
