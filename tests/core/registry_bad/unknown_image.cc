// EXPECT: claims an image that is not in the magic table
#include "tests/core/registry_bad/common.h"
namespace crpp::bad {
struct Mystery {
  static constexpr std::string_view kName = "mystery";
  static constexpr Stage kStage = Stage::kTask;
  static constexpr std::string_view kImages[] = {"NO_SUCH_IMAGE"};
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
  static absl::Status Restore(RestoreContext&) { return absl::OkStatus(); }
};
Engine<Registry<Good, Mystery>> engine;
}  // namespace crpp::bad
