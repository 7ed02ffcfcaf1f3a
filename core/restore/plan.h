// What the restore plugins prepare, inside the task being restored, for the
// restorer blob: its argument block lives in the "keep" area (memory that
// survives when the blob unmaps the engine), and the plugins fill it in.
#ifndef CRPP_CORE_RESTORE_PLAN_H_
#define CRPP_CORE_RESTORE_PLAN_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "restorer/restorer_args.h"

namespace crpp {

struct RestorePlan {
  // Bytes (including bss) the restorer blob needs; set by the driver before
  // the plugins run, so the memory plugin can reserve room for it.
  size_t blob_size = 0;
  // Threads besides the main one (set by the driver from pstree.img): the
  // memory plugin reserves their descriptions (args->threads), xsave areas
  // and stacks, and the task plugin fills them in.
  size_t nr_threads = 0;
  // Set by the memory plugin when it lays out the keep area.
  restorer_args* args = nullptr;
  uint64_t blob_addr = 0;
  uint64_t keep_start = 0, keep_end = 0;
  size_t xsave_capacity = 0;  // bytes reserved at args->xsave (and at each thread's)
  uint64_t pages_restored = 0;
  // The task was stopped at dump time: the engine leaves it stopped.
  bool stopped = false;
  // The vDSO/vvar areas this task has now ([start, end)): they are moved, not
  // unmapped, by the restorer. Set by the memory plugin.
  std::vector<std::pair<uint64_t, uint64_t>> kernel_areas;
  // The memory plugin's own state from its RestoreBeforeChildren hook to its
  // Restore (the type is the plugin's): what it premapped before the fork.
  std::shared_ptr<void> memory;
  // The parent task's plan (null for the root), as the fork left it in this
  // task's copy of the parent's memory: the memory plugin finds there the
  // premapped areas the task inherited copy-on-write. Only `memory` is valid
  // in the child; the parent's keep area was not inherited.
  const RestorePlan* parent = nullptr;
};

}  // namespace crpp

#endif  // CRPP_CORE_RESTORE_PLAN_H_
