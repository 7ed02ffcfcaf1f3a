// EXPECT: missing `static absl::Status Dump(DumpContext&)`
#include "tests/core/registry_bad/common.h"
namespace crpp::bad {
struct IntDump {
  static constexpr std::string_view kName = "intdump";
  static constexpr Stage kStage = Stage::kTask;
  static constexpr std::string_view kImages[] = {"CREDS"};
  static int Dump(DumpContext&) { return 0; }
  static absl::Status Restore(RestoreContext&) { return absl::OkStatus(); }
};
Engine<Registry<Good, IntDump>> engine;
}  // namespace crpp::bad
