// Restore side of the TaskCore plugin.
#include "absl/strings/str_format.h"
#include "resources/task/core.h"

namespace crpp::resources {

absl::Status TaskCore::Restore(RestoreContext& ctx) {
  return absl::UnimplementedError(
      absl::StrFormat("restoring the CPU state of pid %d is not supported yet", ctx.pid));
}

}  // namespace crpp::resources
