// Thaw: crpp::Restore with new stdio pipes for the caller, a pidfd, and an
// intermediate process when the tree must not be the caller's child.
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_format.h"
#include "api/criu.h"
#include "api/internal.h"
#include "api/stdio_pipes.h"
#include "core/log.h"

namespace crpp {
namespace {

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

absl::Status WritePidfile(const std::string& path, pid_t pid) {
  std::ofstream out(path, std::ios::trunc);
  out << pid << "\n";
  out.close();
  if (!out) return absl::PermissionDeniedError("cannot write the pidfile " + path);
  return absl::OkStatus();
}

// What the intermediate process of a detached thaw tells the caller.
struct DetachedReply {
  pid_t pid;  // 0: the restore failed
  int pidfd;  // the root's pidfd, in the intermediate process
  int code;   // absl::StatusCode of the failure
  char message[1000];
};

// Restores in a child that exits right after, so that the tree is reparented
// away from the caller. The root's pidfd is taken from the child with
// pidfd_getfd before it exits.
absl::StatusOr<std::pair<pid_t, int>> RestoreDetached(const RestoreRequest& request) {
  int reply_pipe[2], go_pipe[2];
  if (pipe2(reply_pipe, O_CLOEXEC) != 0)
    return absl::InternalError("pipe: " + std::string(strerror(errno)));
  if (pipe2(go_pipe, O_CLOEXEC) != 0) {
    close(reply_pipe[0]);
    close(reply_pipe[1]);
    return absl::InternalError("pipe: " + std::string(strerror(errno)));
  }
  pid_t middle = fork();
  if (middle < 0) {
    const int e = errno;
    for (int fd : {reply_pipe[0], reply_pipe[1], go_pipe[0], go_pipe[1]}) close(fd);
    return absl::InternalError("Thaw: fork: " + std::string(strerror(e)));
  }
  if (middle == 0) {
    close(reply_pipe[0]);
    close(go_pipe[1]);
    DetachedReply reply{};
    auto restored = Restore(request);
    if (restored.ok()) {
      reply.pid = restored->pid;
      reply.pidfd = PidfdOpen(restored->pid);
    } else {
      reply.code = static_cast<int>(restored.status().code());
      snprintf(reply.message, sizeof reply.message, "%s",
               std::string(restored.status().message()).c_str());
    }
    (void)!write(reply_pipe[1], &reply, sizeof reply);
    char go;
    (void)!read(go_pipe[0], &go, 1);  // the caller has the pidfd now
    _exit(0);
  }
  close(reply_pipe[1]);
  close(go_pipe[0]);
  DetachedReply reply{};
  ssize_t n = read(reply_pipe[0], &reply, sizeof reply);
  close(reply_pipe[0]);
  int pidfd = -1;
  if (n == sizeof reply && reply.pid > 0 && reply.pidfd >= 0) {
    int middle_fd = PidfdOpen(middle);
    if (middle_fd >= 0) {
      pidfd = static_cast<int>(syscall(SYS_pidfd_getfd, middle_fd, reply.pidfd, 0));
      close(middle_fd);
    }
  }
  close(go_pipe[1]);
  waitpid(middle, nullptr, 0);
  if (n != sizeof reply) {
    return absl::InternalError("Thaw: the restoring process ended without an answer");
  }
  if (reply.pid <= 0) {
    return absl::Status(static_cast<absl::StatusCode>(reply.code), reply.message);
  }
  return std::make_pair(reply.pid, pidfd);
}

}  // namespace

Thawed::~Thawed() {
  for (int n = 0; n < 3; ++n) close(TakeStdio(n));
  if (!detached_ && !waited_) waitpid(pid_, nullptr, WNOHANG);
  if (pidfd_ >= 0) close(pidfd_);
}

int Thawed::TakeStdio(int n) {
  if (n < 0 || n > 2) return -1;
  int fd = stdio_[n];
  // One pipe for two stdio fds: whoever takes it takes both.
  for (int& other : stdio_) {
    if (other == fd) other = -1;
  }
  return fd;
}

absl::StatusOr<int> Thawed::Wait() {
  if (waited_)
    return absl::FailedPreconditionError(absl::StrFormat("pid %d: waited already", pid_));
  if (detached_) {
    if (pidfd_ < 0) {
      return absl::FailedPreconditionError(
          absl::StrFormat("pid %d: detached, and no pidfd to wait on", pid_));
    }
    pollfd p = {pidfd_, POLLIN, 0};
    while (poll(&p, 1, -1) < 0) {
      if (errno != EINTR) return absl::InternalError(absl::StrFormat("poll: %s", strerror(errno)));
    }
    waited_ = true;
    return -1;
  }
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0) {
    if (errno == ECHILD) {
      waited_ = true;
      return absl::NotFoundError(
          absl::StrFormat("pid %d was reaped already (a Freeze that killed it collects it)", pid_));
    }
    if (errno != EINTR) {
      return absl::InternalError(absl::StrFormat("waitpid %d: %s", pid_, strerror(errno)));
    }
  }
  waited_ = true;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

absl::Status Thawed::Terminate(int signal) {
  if (pidfd_ < 0 || syscall(SYS_pidfd_send_signal, pidfd_, signal, nullptr, 0) != 0) {
    return absl::InternalError(
        absl::StrFormat("pid %d: sending signal %d: %s", pid_, signal, strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Thawed>> Thaw(const std::string& dir, const ThawOptions& options) {
  if (absl::Status s = api_internal::RequireCaps("Thaw"); !s.ok()) return s;
  char* real = realpath(dir.c_str(), nullptr);
  if (real == nullptr) {
    return absl::InvalidArgumentError("Thaw: the images directory " + dir + " does not exist");
  }
  std::string images_dir = real;
  free(real);
  std::unique_ptr<Thawed> thawed(new Thawed);
  thawed->log_path_ = api_internal::LogPathIn(images_dir, options.log_path, "restore.log");
  thawed->detached_ = options.detach;
  api_internal::LogScope scope;
  if (absl::Status s = scope.Open(thawed->log_path_, options.verbosity); !s.ok()) return s;

  RestoreRequest request;
  request.images_dir = images_dir;
  request.shell_job = options.shell_job;
  request.engine = options.resources;
  request.inherit_fds = options.inherit_fds;
  api_internal::StdioPipes stdio;
  if (options.new_stdio) {
    auto made = api_internal::MakeStdioPipes(images_dir);
    if (!made.ok()) return log::Failed(made.status());
    stdio = *std::move(made);
    for (const InheritFd& in : stdio.inherit) request.inherit_fds.push_back(in);
  }
  if (!options.pidfile.empty()) {
    request.on_running = [&options](pid_t pid) { return WritePidfile(options.pidfile, pid); };
  }
  log::Info("Thaw: %s%s", images_dir, options.detach ? " (detached)" : "");
  if (options.detach) {
    auto restored = RestoreDetached(request);
    if (!restored.ok()) return log::Failed(restored.status());
    thawed->pid_ = restored->first;
    thawed->pidfd_ = restored->second;
  } else {
    auto restored = Restore(request);
    if (!restored.ok()) return log::Failed(restored.status());
    thawed->pid_ = restored->pid;
    thawed->pidfd_ = PidfdOpen(restored->pid);
  }
  stdio.CloseTaskEnds();  // the tree has them now
  for (int n = 0; n < 3; ++n) thawed->stdio_[n] = stdio.caller[n];
  stdio.caller = {-1, -1, -1};
  log::Info("Thaw: pid %d runs", thawed->pid_);
  return thawed;
}

}  // namespace crpp
