// The memory plugin's share of the restorer's plan besides the VMAs: the
// work ("keep") area with the restorer's arguments, stacks and blob, the
// vDSO moves and the fields of PR_SET_MM_MAP.
#ifndef CRPP_RESOURCES_MM_WORK_AREA_H_
#define CRPP_RESOURCES_MM_WORK_AREA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/context.h"
#include "core/restore/plan.h"
#include "mm.pb.h"

namespace crpp::resources {

// Maps the work area where both the target's layout and ours leave room,
// with `premap_total` bytes for the premapped VMAs at its end, and sets up
// the restorer's arguments in it (plan.args, keep_start/end, blob_addr,
// xsave_capacity; the threads' stacks). Returns where the premaps go.
absl::StatusOr<uint64_t> MapWorkArea(const criu::mm_entry& mm, uint64_t premap_total,
                                     RestorePlan& plan);

// Reads where this task's vDSO areas are (/proc/self/maps), for
// PlanSpecialAreas here and in every task forked from here on: a child has
// them where its parent has them, and only a task's restorer moves them, at
// its very end. Reading maps costs a task ~0.2 ms of CPU (the engine's
// VMAs), so the root learns them once for the tree; PlanSpecialAreas reads
// them itself where this was not called (tests of one task).
absl::Status LearnSpecialAreas();

// Moves the vDSO areas where the task had its own (`vdso`, `vvars`: the
// image's, in its order): the same kernel gives the same layout.
absl::Status PlanSpecialAreas(RestorePlan& plan, const std::vector<const criu::vma_entry*>& vdso,
                              const std::vector<const criu::vma_entry*>& vvars);

// The fields of PR_SET_MM_MAP, and the executable's fd.
absl::Status PlanMmFields(const RestoreContext& ctx, const criu::mm_entry& mm,
                          const std::string& mm_path, restorer_mm& m);

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_MM_WORK_AREA_H_
