// Restoring a process from a directory of images: the driver that creates
// the task with its original pid, runs every resource plugin's Restore inside
// it and hands over to the restorer blob. A failure at any point kills the
// half-restored task and names the resource and the reason.
#ifndef CRPP_CORE_RESTORE_RESTORE_H_
#define CRPP_CORE_RESTORE_RESTORE_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine.h"

namespace crpp {

// criu's --inherit-fd fd[N]:RESOURCE: the caller's fd N stands for the
// resource the images name (e.g. "pipe:[12345]" for the pipe of inode 12345
// at dump time, or a regular file's path without its leading '/'): the
// tasks get it instead of a new one.
struct InheritFd {
  int fd = -1;
  std::string resource;
};

// "fd[N]:RESOURCE" -> {N, RESOURCE}.
absl::StatusOr<InheritFd> ParseInheritFd(std::string_view arg);

struct RestoreRequest {
  std::string images_dir;
  bool shell_job = false;
  std::vector<InheritFd> inherit_fds;
  // Called with the restored pid as soon as the task runs (pidfile, ...). An
  // error it returns fails the restore: the task is killed.
  std::function<absl::Status(pid_t)> on_running;
  // The resource plugins to run; null: DefaultEngine() (resources/
  // default_resources.h). It must know every image the dump wrote.
  const AnyEngine* engine = nullptr;
};

struct RestoreResult {
  pid_t pid = 0;
  uint64_t restore_us = 0;
};

// Restores the tree; returns once the task runs (the caller then waits for
// it, or leaves it: the task is the caller's child either way).
absl::StatusOr<RestoreResult> Restore(const RestoreRequest& request);

}  // namespace crpp

#endif  // CRPP_CORE_RESTORE_RESTORE_H_
