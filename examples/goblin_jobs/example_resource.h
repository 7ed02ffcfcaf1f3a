// A resource plugin from outside the engine, as a program adds its own: it
// keeps nothing of the process, it only notes in the images directory that
// its Dump and Restore hooks ran (example-resource.txt), which goblin_jobs
// shows and its test checks.
#ifndef CRPP_EXAMPLES_GOBLIN_JOBS_EXAMPLE_RESOURCE_H_
#define CRPP_EXAMPLES_GOBLIN_JOBS_EXAMPLE_RESOURCE_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/context.h"
#include "core/registry.h"
#include "resources/inventory/inventory.h"

namespace goblin_jobs {

struct ExampleResource {
  static constexpr std::string_view kName = "example";
  static constexpr crpp::Stage kStage = crpp::Stage::kTask;
  static constexpr bool kNoImages = true;  // writes no image of criu's
  using Depends = crpp::DependsOn<crpp::resources::Inventory>;
  // Once per dumped process: "dumped PID".
  static absl::Status Dump(crpp::DumpContext& ctx);
  // Inside each restored process, before it resumes: "restored PID".
  static absl::Status Restore(crpp::RestoreContext& ctx);
};

// The file the hooks write, in an images directory.
std::string NotesPath(const std::string& images_dir);

}  // namespace goblin_jobs

#endif  // CRPP_EXAMPLES_GOBLIN_JOBS_EXAMPLE_RESOURCE_H_
