// EXPECT: missing `static absl::Status Restore(RestoreContext&)`
#include "tests/core/registry_bad/common.h"
namespace crpp::bad {
struct NoRestore {
  static constexpr std::string_view kName = "norestore";
  static constexpr Stage kStage = Stage::kTask;
  static constexpr std::string_view kImages[] = {"CREDS"};
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
};
Engine<Registry<Good, NoRestore>> engine;
}  // namespace crpp::bad
