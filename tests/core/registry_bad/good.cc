// EXPECT-OK: the control case; if this does not compile, the others prove nothing.
#include "tests/core/registry_bad/common.h"
namespace crpp::bad {
struct Other {
  static constexpr std::string_view kName = "other";
  static constexpr Stage kStage = Stage::kTask;
  static constexpr std::string_view kImages[] = {"CREDS"};
  using Depends = DependsOn<Good>;
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
  static absl::Status Restore(RestoreContext&) { return absl::OkStatus(); }
};
// Same stage as Good and registered after it: fine.
struct Sibling {
  static constexpr std::string_view kName = "sibling";
  static constexpr Stage kStage = Stage::kFiles;
  static constexpr std::string_view kImages[] = {"PSTREE"};
  using Depends = DependsOn<Good>;
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
  static absl::Status Restore(RestoreContext&) { return absl::OkStatus(); }
};
Engine<Registry<Good>::With<Other, Sibling>> engine;
}  // namespace crpp::bad
