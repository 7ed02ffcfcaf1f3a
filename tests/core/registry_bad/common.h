// Plugins shared by the compile-fail cases: each case adds one broken plugin.
#include "core/engine.h"
#include "core/registry.h"

namespace crpp::bad {

struct Good {
  static constexpr std::string_view kName = "good";
  static constexpr Stage kStage = Stage::kFiles;
  static constexpr std::string_view kImages[] = {"FILES"};
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
  static absl::Status Restore(RestoreContext&) { return absl::OkStatus(); }
};

}  // namespace crpp::bad
