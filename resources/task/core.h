// The task's CPU and kernel state (core-PID.img): registers, FPU/AVX state,
// signal mask and actions, itimers, rlimits, credentials, robust futex list,
// rseq, personality, name. Restore hands the parts that must be applied last
// to the restorer blob and applies the rest in the task directly.
#ifndef CRPP_RESOURCES_TASK_CORE_H_
#define CRPP_RESOURCES_TASK_CORE_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/mm/memory.h"

namespace crpp::resources {

struct TaskCore {
  static constexpr std::string_view kName = "core";
  static constexpr Stage kStage = Stage::kTask;
  static constexpr std::string_view kImages[] = {"CORE"};
  using Depends = DependsOn<Memory>;
  static absl::Status Precheck(DumpContext& ctx);
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

// core_entry.tc.task_state, compel's numbers.
inline constexpr uint32_t kTaskAlive = 1;
inline constexpr uint32_t kTaskDead = 2;
inline constexpr uint32_t kTaskStopped = 3;

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_TASK_CORE_H_
