// The address space: mm-PID.img (layout, VMAs, auxv), pagemap-PID.img and
// pages-N.img (contents of the pages the task has, zero pages excepted).
//
// Dump has the parasite splice page contents into the pages image; restore
// premaps every private VMA inside the restorer's keep area, fills it with
// preadv straight from the pages image, and leaves the final moves to the
// restorer blob. Pages a task shared copy-on-write with its parent stay
// shared: the dump marks pages mapped more than once (kPeShared), and a task
// premaps and fills the VMAs holding such pages before it forks its children
// (RestoreBeforeChildren), which keep every inherited page that equals their
// own (memory_restore.cc).
#ifndef CRPP_RESOURCES_MM_MEMORY_H_
#define CRPP_RESOURCES_MM_MEMORY_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/files/fds.h"

namespace crpp::resources {

struct Memory {
  static constexpr std::string_view kName = "memory";
  static constexpr Stage kStage = Stage::kMemory;
  static constexpr std::string_view kImages[] = {"MM", "PAGEMAP"};
  using Depends = DependsOn<Fds>;
  static absl::Status Precheck(DumpContext& ctx);
  static absl::Status Dump(DumpContext& ctx);
  // In the root before the other tasks are forked: where the vDSO areas
  // are, learned once for all of them (LearnSpecialAreas).
  static absl::Status RestoreShared(RestoreContext& ctx);
  static absl::Status RestoreBeforeChildren(RestoreContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

// VMA status bits of CRIU's images (vma_entry.status).
inline constexpr uint32_t kVmaRegular = 1u << 0;
inline constexpr uint32_t kVmaStack = 1u << 1;
inline constexpr uint32_t kVmaVsyscall = 1u << 2;
inline constexpr uint32_t kVmaVdso = 1u << 3;
inline constexpr uint32_t kVmaHeap = 1u << 5;
inline constexpr uint32_t kVmaFilePrivate = 1u << 6;
inline constexpr uint32_t kVmaFileShared = 1u << 7;
inline constexpr uint32_t kVmaAnonShared = 1u << 8;
inline constexpr uint32_t kVmaAnonPrivate = 1u << 9;
inline constexpr uint32_t kVmaVvar = 1u << 12;
inline constexpr uint32_t kVmaMemfd = 1u << 14;

// pagemap_entry.flags
inline constexpr uint32_t kPePresent = 4;
// crpp's own flag, which CRIU never sets nor reads: the pages of the entry
// were mapped more than once when dumped (not PM_MMAP_EXCLUSIVE), such as
// pages a fork left shared copy-on-write. Only these are worth comparing
// with what a restored child inherits from its parent; without the flag
// (CRIU's images) every task gets its own copy of its pages.
inline constexpr uint32_t kPeShared = 1u << 16;

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_MM_MEMORY_H_
