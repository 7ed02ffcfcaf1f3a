// EXPECT: depends on a plugin that is not registered
#include "tests/core/registry_bad/common.h"
namespace crpp::bad {
struct Needy {
  static constexpr std::string_view kName = "needy";
  static constexpr Stage kStage = Stage::kTask;
  static constexpr std::string_view kImages[] = {"CREDS"};
  using Depends = DependsOn<Good>;
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
  static absl::Status Restore(RestoreContext&) { return absl::OkStatus(); }
};
Engine<Registry<Needy>> engine;
}  // namespace crpp::bad
