// The address space: mm-PID.img (layout, VMAs, auxv), pagemap-PID.img and
// pages-N.img (contents of the pages the task has, zero pages excepted).
//
// Dump reads page contents with process_vm_readv in large batches; restore
// premaps every private VMA inside the restorer's keep area, fills it with
// preadv straight from the pages image, and leaves the final moves to the
// restorer blob.
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

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_MM_MEMORY_H_
