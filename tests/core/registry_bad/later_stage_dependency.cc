// EXPECT: depends on a plugin of a later stage
#include "tests/core/registry_bad/common.h"
namespace crpp::bad {
struct Early {
  static constexpr std::string_view kName = "early";
  static constexpr Stage kStage = Stage::kTree;
  static constexpr std::string_view kImages[] = {"PSTREE"};
  using Depends = DependsOn<Good>;  // Good runs in the files stage, after the tree
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
  static absl::Status Restore(RestoreContext&) { return absl::OkStatus(); }
};
Engine<Registry<Good, Early>> engine;
}  // namespace crpp::bad
