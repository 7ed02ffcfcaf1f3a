// Restore side of the Memory plugin.
#include "absl/strings/str_format.h"
#include "resources/mm/memory.h"

namespace crpp::resources {

absl::Status Memory::Restore(RestoreContext& ctx) {
  return absl::UnimplementedError(
      absl::StrFormat("restoring the memory of pid %d is not supported yet", ctx.pid));
}

}  // namespace crpp::resources
