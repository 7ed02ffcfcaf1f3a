#include "tools/common/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/proc/proc.h"

namespace crpp::tools {
namespace {

constexpr int kPollMs = 5;
constexpr int kFatalSignals[] = {SIGINT, SIGTERM, SIGHUP};

// The pids ChildGuards hold, for the signal handler.
constexpr int kMaxGuarded = 16;
volatile pid_t g_guarded[kMaxGuarded];

void SetGuarded(pid_t from, pid_t to) {
  for (volatile pid_t& slot : g_guarded) {
    if (slot == from) {
      slot = to;
      return;
    }
  }
}

void OnFatalSignal(int sig) {
  for (volatile pid_t& slot : g_guarded) {
    if (slot > 0) kill(slot, SIGKILL);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

// What the watchdog says when it fires (set before it is armed).
char g_watchdog_message[512];
size_t g_watchdog_message_len = 0;

void OnWatchdog(int) {
  (void)!write(STDERR_FILENO, g_watchdog_message, g_watchdog_message_len);
  for (volatile pid_t& slot : g_guarded) {
    if (slot > 0) kill(slot, SIGKILL);
  }
  _exit(1);
}

bool IsExecutable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

// Writes ERR to FD and ends the child: exec or a setup step failed.
[[noreturn]] void ChildFailed(int fd, int err) {
  (void)!write(fd, &err, sizeof err);
  _exit(127);
}

}  // namespace

absl::StatusOr<std::string> FindRunfile(const std::string& path) {
  const char* workspace_env = getenv("TEST_WORKSPACE");
  const std::string workspace = workspace_env != nullptr ? workspace_env : "crpp";
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::canonical("/proc/self/exe", ec);
  std::vector<std::string> roots;
  for (const char* var : {"RUNFILES_DIR", "TEST_SRCDIR"}) {
    if (const char* dir = getenv(var); dir != nullptr && *dir != '\0') roots.push_back(dir);
  }
  if (!ec) roots.push_back(exe.string() + ".runfiles");
  std::vector<std::string> tried;
  for (const std::string& root : roots) {
    tried.push_back(absl::StrCat(root, "/", workspace, "/", path));
    if (IsExecutable(tried.back())) return tried.back();
  }
  if (!ec) {
    tried.push_back((exe.parent_path() / std::filesystem::path(path).filename()).string());
    if (IsExecutable(tried.back())) return tried.back();
  }
  return absl::NotFoundError(
      absl::StrCat("cannot find ", path, " (tried ", absl::StrJoin(tried, ", "), ")"));
}

absl::Status Spawn(const std::vector<std::string>& argv, const std::string& stdout_path,
                   const std::string& stderr_path, ChildGuard& guard) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The child reports a failed setup or exec through this pipe; a successful
  // exec closes it (O_CLOEXEC), and the parent reads end-of-file.
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  sigset_t none, fatal, saved;
  sigemptyset(&none);
  sigemptyset(&fatal);
  for (int sig : kFatalSignals) sigaddset(&fatal, sig);
  // Until GUARD holds the child, a signal must not end us.
  sigprocmask(SIG_BLOCK, &fatal, &saved);

  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    sigprocmask(SIG_SETMASK, &saved, nullptr);
    close(report[0]);
    close(report[1]);
    return absl::InternalError(absl::StrCat("fork: ", strerror(err)));
  }
  if (pid == 0) {
    // The child: async-signal-safe calls only. The report pipe goes to fd 3,
    // the last fd before the ones closed below, and closes itself at exec.
    close(report[0]);
    const int in_fd = open("/dev/null", O_RDONLY);
    const int out_fd = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    const int err_fd = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in_fd < 0 || out_fd < 0 || err_fd < 0) ChildFailed(report[1], errno);
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) {
      ChildFailed(report[1], errno);
    }
    if (report[1] != 3 && dup3(report[1], 3, O_CLOEXEC) < 0) ChildFailed(report[1], errno);
    if (setsid() < 0) ChildFailed(3, errno);
    for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (syscall(SYS_close_range, 4, ~0U, 0) != 0) ChildFailed(3, errno);
    execv(args[0], args.data());
    ChildFailed(3, errno);
  }
  guard.Reset(pid);
  sigprocmask(SIG_SETMASK, &saved, nullptr);
  close(report[1]);
  int err = 0;
  ssize_t n;
  while ((n = read(report[0], &err, sizeof err)) < 0 && errno == EINTR) {
  }
  close(report[0]);
  if (n > 0) {
    waitpid(pid, nullptr, 0);
    guard.Reaped();
    return absl::InternalError(absl::StrCat("cannot start ", argv[0], ": ", strerror(err)));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> WaitExit(pid_t pid, int timeout_ms) {
  for (int waited = 0;; waited += kPollMs) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno == ECHILD) {
      return absl::NotFoundError(absl::StrCat("pid ", pid, " is not our child (any more)"));
    }
    if (r < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("waitpid(", pid, "): ", strerror(errno)));
    }
    if (waited >= timeout_ms) {
      return absl::DeadlineExceededError(
          absl::StrCat("pid ", pid, " did not end within ", timeout_ms, " ms"));
    }
    usleep(kPollMs * 1000);
  }
}

absl::StatusOr<std::string> WaitDumpedChildGone(pid_t pid, int timeout_ms) {
  absl::StatusOr<int> status = WaitExit(pid, timeout_ms);
  std::string how;
  if (status.ok()) {
    how = absl::StrCat("we reaped it (", DescribeWaitStatus(*status), ")");
  } else if (absl::IsNotFound(status.status())) {
    how = "crpp::Dump reaped it: it traced it, and here it is its parent too";
  } else {
    return absl::InternalError(
        absl::StrCat("pid ", pid, " lives on after the dump: ", status.status().message()));
  }
  if (ProcState(pid) != 0) {
    return absl::InternalError(absl::StrCat("pid ", pid, " still exists after the dump"));
  }
  return how;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)),
                        ")");
  }
  return absl::StrCat("wait status ", status);
}

char ProcState(pid_t pid) {
  absl::StatusOr<proc::Stat> stat = proc::ReadStat(pid);
  return stat.ok() ? stat->state : 0;
}

pid_t ParentOf(pid_t pid) {
  absl::StatusOr<proc::Stat> stat = proc::ReadStat(pid);
  return stat.ok() ? stat->ppid : 0;
}

double SecondsSince(std::chrono::steady_clock::time_point from) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - from).count();
}

void ChildGuard::Reset(pid_t pid) {
  Kill();
  pid_ = pid;
  SetGuarded(0, pid);
}

void ChildGuard::Reaped() {
  SetGuarded(pid_, 0);
  pid_ = 0;
}

void ChildGuard::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  Reaped();
}

void KillGuardedOnSignals() {
  struct sigaction sa = {};
  sa.sa_handler = OnFatalSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : kFatalSignals) sigaction(sig, &sa, nullptr);
}

Watchdog::Watchdog(int seconds, const std::string& what) {
  const std::string message =
      absl::StrCat("\n", what, " did not finish within ", seconds, " s: giving up\n");
  g_watchdog_message_len = std::min(message.size(), sizeof g_watchdog_message);
  memcpy(g_watchdog_message, message.data(), g_watchdog_message_len);
  struct sigaction sa = {};
  sa.sa_handler = OnWatchdog;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, nullptr);
  alarm(static_cast<unsigned>(seconds));
}

Watchdog::~Watchdog() { alarm(0); }

}  // namespace crpp::tools
