// Freeze: crpp::Dump with the library's defaults and its log in the images
// directory.
#include <stdlib.h>

#include "api/criu.h"
#include "api/internal.h"
#include "core/log.h"

namespace crpp {

absl::StatusOr<FreezeResult> Freeze(pid_t pid, const std::string& dir,
                                    const FreezeOptions& options) {
  if (absl::Status s = api_internal::RequireCaps("Freeze"); !s.ok()) return s;
  char* real = realpath(dir.c_str(), nullptr);
  if (real == nullptr) {
    return absl::InvalidArgumentError("Freeze: the images directory " + dir + " does not exist");
  }
  FreezeResult result;
  result.pid = pid;
  result.images_dir = real;
  free(real);
  result.log_path = api_internal::LogPathIn(result.images_dir, options.log_path, "dump.log");
  api_internal::LogScope scope;
  if (absl::Status s = scope.Open(result.log_path, options.verbosity); !s.ok()) return s;

  DumpRequest request;
  request.pid = pid;
  request.images_dir = result.images_dir;
  request.leave_running = options.leave_running;
  request.shell_job = options.shell_job;
  request.external = options.external;
  request.file_locks = options.file_locks;
  request.engine = options.resources;
  log::Info("Freeze: pid %d into %s (%s)", pid, result.images_dir,
            options.leave_running ? "left running" : "killed once dumped");
  auto stats = Dump(request);
  if (!stats.ok()) return log::Failed(stats.status());
  result.stats = *stats;
  return result;
}

}  // namespace crpp
