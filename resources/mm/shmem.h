// Shared memory that outlives any one mapping of it: memfds (files.img
// entries of type MEMFD, memfd.img with one entry per memfd inode) and
// anonymous shared mappings (MAP_SHARED|MAP_ANONYMOUS, "/dev/zero (deleted)"
// in the maps), with their contents in pagemap-shmem-SHMID.img and a pages
// image of their own, as CRIU stores them.
//
// Dump finds every memfd fd and every shared mapping of a memfd or of
// anonymous shared memory in the tree, and reads each object's contents once
// (holes stay holes) through /proc/PID/fd or /proc/PID/map_files.
// Restore makes each object in the root task before the others are forked
// (memfd_create with its name, size, contents, then its seals; a shared
// anonymous mapping whose fd comes from /proc/self/map_files), so every task
// inherits the same object: memfd descriptions go to the Fds plugin through
// RestoreContext::Inherit, and the Memory plugin maps the objects from
// RestoreContext::shared_memory. SysV shared memory is not supported.
#ifndef CRPP_RESOURCES_MM_SHMEM_H_
#define CRPP_RESOURCES_MM_SHMEM_H_

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/tree/tree.h"

namespace crpp::resources {

struct Shmem {
  static constexpr std::string_view kName = "shmem";
  static constexpr Stage kStage = Stage::kShared;
  static constexpr Scope kScope = Scope::kTree;
  static constexpr std::string_view kImages[] = {"MEMFD_INODE"};  // and shmem pagemaps
  using Depends = DependsOn<Tree>;
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

// The RestoreContext::shared_memory key of what a VMA maps: a memfd by the
// MEMFD file id in its shmid, anonymous shared memory by its shmid.
inline uint64_t SharedMemoryKey(bool memfd, uint64_t shmid) {
  return memfd ? shmid : (shmid | (1ull << 63));
}

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_MM_SHMEM_H_
