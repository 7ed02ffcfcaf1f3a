// EXPECT: two plugins have the same kName
#include "tests/core/registry_bad/common.h"
namespace crpp::bad {
struct AlsoGood {
  static constexpr std::string_view kName = "good";
  static constexpr Stage kStage = Stage::kTask;
  static constexpr std::string_view kImages[] = {"CREDS"};
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
  static absl::Status Restore(RestoreContext&) { return absl::OkStatus(); }
};
Engine<Registry<Good>::With<AlsoGood>> engine;
}  // namespace crpp::bad
