// How the memory plugin fills premapped VMAs from a pages image: straight
// copies into fresh memory, and, in memory inherited copy-on-write from the
// parent task, a page-by-page comparison that writes only the pages that
// differ, so that equal pages stay one copy shared with the parent.
#ifndef CRPP_RESOURCES_MM_MEMORY_FILL_H_
#define CRPP_RESOURCES_MM_MEMORY_FILL_H_

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace crpp::resources::fill {

inline constexpr uint64_t kPage = 4096;

// Consecutive pages of a task's pagemap, in one VMA.
struct Run {
  uint64_t addr = 0, pages = 0;
  off_t off = 0;        // where their contents start in the pages image
  bool shared = false;  // mapped more than once at dump time (kPeShared)
  uint64_t end() const { return addr + pages * kPage; }
};

// Copies `len` bytes at `off` of the pages image to `dst`; with `compare`,
// `dst` holds inherited pages and only those that differ are written.
struct Job {
  char* dst = nullptr;
  off_t off = 0;
  uint64_t len = 0;
  bool compare = false;
};

// [start, end) address ranges, sorted, not overlapping.
using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

// What filling an inherited VMA takes: pages to drop first (the parent's
// pages this task has not, or will overwrite), then the jobs.
struct InheritedPlan {
  Ranges drop;  // premap addresses
  std::vector<Job> jobs;
};

// Plans the fill of a VMA premapped at `at` (its final start `start`) that
// holds the parent's pages `parent` (the parent's runs in the VMA) with this
// task's runs `mine`. A page both have and that this task's dump saw shared
// is compared; other pages of this task are copied into dropped or empty
// memory; the parent's other pages are dropped, so they read as zero (or as
// the file, in a private file mapping) as they did in this task.
InheritedPlan PlanInherited(uint64_t at, uint64_t start, std::span<const Run> mine,
                            std::span<const Run> parent);

// Runs the jobs (on two threads when there is much to do: filling fresh
// memory is bound by page faults, which scale with cores). `same_pages` gets
// the number of compared pages that were equal and stay shared.
absl::Status RunJobs(int fd, const std::string& path, std::vector<Job> jobs, uint64_t& same_pages);

}  // namespace crpp::resources::fill

#endif  // CRPP_RESOURCES_MM_MEMORY_FILL_H_
