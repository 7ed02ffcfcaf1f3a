// File locks the tree's tasks hold (CRIU's filelocks.img): flock(2) locks,
// POSIX record locks (F_SETLK) and open file description locks (F_OFD_SETLK).
//
// Dump reads each fd's "lock:" lines in /proc/PID/fdinfo/FD, which list the
// locks taken through that very description (and, for POSIX locks, by that
// process). Without --file-locks a task holding a lock is refused, as criu
// does. A flock or OFD lock belongs to its description: it is written once
// even when several fds or processes share the description. Leases and
// anything else are refused.
//
// Restore takes each lock again inside the task that held it, on the fd that
// held it, once every fd and mapping of the task is in place (this plugin
// runs in the last stage: closing any fd of a file drops the process's POSIX
// locks on it). A lock someone else holds meanwhile fails the restore, naming
// the file, the range and the holder.
//
// A POSIX lock belongs to an fd table (the kernel's lock owner): in a table
// several processes share (clone(CLONE_FILES)) it is dumped once, as the
// table's owner's, which takes it back. Not handled yet: closing any fd of
// the locked file in that table drops the lock, and the tasks sharing the
// table are restored after the owner, opening and closing the files they
// map; a lock on a file one of them maps would be lost.
#ifndef CRPP_RESOURCES_FILES_LOCKS_H_
#define CRPP_RESOURCES_FILES_LOCKS_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/files/fds.h"

namespace crpp::resources {

struct FileLocks {
  static constexpr std::string_view kName = "file-locks";
  static constexpr Stage kStage = Stage::kTask;
  static constexpr std::string_view kImages[] = {"FILE_LOCKS"};
  using Depends = DependsOn<Fds>;
  static absl::Status Precheck(DumpContext& ctx);
  // filelocks.img is one image for the whole tree: it is written while the
  // tree's first task is selected (the others have nothing left to do).
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_FILES_LOCKS_H_
