#include "tools/pdum/cleanup_watcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_format.h"
#include "core/strings.h"

namespace crpp::pdum {

absl::StatusOr<pid_t> StartCleanupWatcher(int pidfd, const std::string& dir) {
  if (pidfd < 0) return absl::InvalidArgumentError("no pidfd of the job to wait on");
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrFormat("pipe: %s", strerror(errno)));
  }
  // Everything the watcher needs is made before fork: after it, only
  // async-signal-safe calls.
  const int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return absl::InternalError(absl::StrFormat("/dev/null: %s", strerror(errno)));
  const std::string exe = "/proc/self/exe";
  fflush(nullptr);
  pid_t middle = fork();
  if (middle < 0) {
    close(null);
    return absl::InternalError(absl::StrFormat("fork: %s", strerror(errno)));
  }
  if (middle == 0) {
    // The middle process exits at once, so the watcher is nobody's child here.
    close(report[0]);
    setsid();
    pid_t watcher = fork();
    if (watcher == 0) {
      // stdio on /dev/null, the pidfd as fd 3 (dup2 clears FD_CLOEXEC), no other fd.
      dup2(null, 0), dup2(null, 1), dup2(null, 2);
      if (pidfd == 3) {
        fcntl(3, F_SETFD, 0);
      } else if (dup2(pidfd, 3) < 0) {
        _exit(127);
      }
      syscall(SYS_close_range, 4, ~0U, 0);
      if (chdir("/") != 0) _exit(127);
      execl(exe.c_str(), "pdum-criu", kWatcherCommand, "3", dir.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    (void)!write(report[1], &watcher, sizeof watcher);
    _exit(watcher > 0 ? 0 : 1);
  }
  close(null);
  close(report[1]);
  pid_t watcher = -1;
  ssize_t n = read(report[0], &watcher, sizeof watcher);
  close(report[0]);
  int status = 0;
  while (waitpid(middle, &status, 0) < 0 && errno == EINTR) {
  }
  if (n != sizeof watcher || watcher <= 0) {
    return absl::InternalError("the cleanup watcher could not be started (fork failed)");
  }
  return watcher;
}

int RunCleanupWatcher(const std::vector<std::string>& args) {
  int pidfd = -1;
  if (args.size() != 2 || !ParseInt(std::string_view(args[0]), pidfd) || pidfd < 0 ||
      !args[1].starts_with("/")) {
    fprintf(stderr, "usage: pdum-criu %s PIDFD /ABSOLUTE/DIR (started by shell beam)\n",
            kWatcherCommand);
    return 2;
  }
  signal(SIGHUP, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  pollfd p = {pidfd, POLLIN, 0};
  while (poll(&p, 1, -1) < 0) {
    if (errno != EINTR) return 1;
  }
  std::error_code ec;
  std::filesystem::remove_all(args[1], ec);
  return ec ? 1 : 0;
}

}  // namespace crpp::pdum
