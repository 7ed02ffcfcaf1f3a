// EXPECT: two plugins claim the same image
#include "tests/core/registry_bad/common.h"
namespace crpp::bad {
struct FilesAgain {
  static constexpr std::string_view kName = "files-again";
  static constexpr Stage kStage = Stage::kTask;
  static constexpr std::string_view kImages[] = {"FILES"};
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
  static absl::Status Restore(RestoreContext&) { return absl::OkStatus(); }
};
Engine<Registry<Good, FilesAgain>> engine;
}  // namespace crpp::bad
