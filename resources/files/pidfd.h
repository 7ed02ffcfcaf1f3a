// pidfds (files.img entries of type PIDFD), the Fds plugin's helpers: a
// pidfd names a process of the dumped tree by pid, and each holder opens it
// again with pidfd_open once that process exists. A pidfd of a process
// outside the tree, or of one that has been reaped, is refused at dump.
#ifndef CRPP_RESOURCES_FILES_PIDFD_H_
#define CRPP_RESOURCES_FILES_PIDFD_H_

#include <sys/types.h>

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/context.h"

namespace criu {
class pidfd_entry;
}  // namespace criu

namespace crpp::resources {

inline bool IsPidfd(std::string_view link) { return link == "anon_inode:[pidfd]"; }

// Adds the files.img entry of `pid`'s pidfd `fd` (open flags `flags`, inode
// `ino`) and returns its id; refuses a pidfd of a process outside the tree.
absl::StatusOr<uint32_t> DumpPidfd(DumpContext& ctx, pid_t pid, int fd, uint32_t flags,
                                   uint64_t ino);

// A new pidfd for the process the entry names (waiting a moment for it to
// be forked, as a sibling may not be yet).
absl::StatusOr<int> OpenPidfd(const criu::pidfd_entry& e, int target_fd);

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_FILES_PIDFD_H_
