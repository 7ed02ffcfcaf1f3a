// EXPECT: or of its own stage registered after it
#include "tests/core/registry_bad/common.h"
namespace crpp::bad {
// Same stage as Good, but registered before it: it would run first.
struct Eager {
  static constexpr std::string_view kName = "eager";
  static constexpr Stage kStage = Stage::kFiles;
  static constexpr std::string_view kImages[] = {"PSTREE"};
  using Depends = DependsOn<Good>;
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
  static absl::Status Restore(RestoreContext&) { return absl::OkStatus(); }
};
Engine<Registry<Eager, Good>> engine;
}  // namespace crpp::bad
