// File descriptors (fdinfo-N.img, with the files they refer to in
// files.img) and the task's fs state: cwd, root, umask (fs-PID.img).
//
// Supported: regular files and directories (path, flags, position; the size
// is checked at restore), character devices by path (/dev/null, ...), and
// with --shell-job the terminal, which restore replaces by the restoring
// shell's terminal; pipes, FIFOs, UNIX sockets, event fds, epolls, memfds,
// inotify instances, fanotify groups and the ends of the tree's ptys by the
// ids their plugins gave. Deleted regular files are the Ghosts plugin's
// (ghost.h): it puts them in ctx.fd_ids before this plugin runs. Anything
// else (a directory removed while open, a virtual console, ...) is refused at
// dump with its fd and kind.
//
// An fd table several processes share (a chain of clone(CLONE_FILES)
// children, TreeTask::files_id) is one fdinfo image, written by its owner,
// the highest of them; the others write their fs only. At restore they are
// forked sharing it and only the owner restores the fds (RestoreContext::
// shares_parent_files; how the tasks take turns in the table:
// core/restore/restore_task.cc).
#ifndef CRPP_RESOURCES_FILES_FDS_H_
#define CRPP_RESOURCES_FILES_FDS_H_

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/registry.h"
#include "resources/pipes/pipes.h"
#include "resources/sockets/unix.h"
#include "resources/tree/tree.h"

namespace criu {
class fdinfo_entry;
}  // namespace criu

namespace crpp::resources {

struct Fds {
  static constexpr std::string_view kName = "fds";
  static constexpr Stage kStage = Stage::kFiles;
  static constexpr std::string_view kImages[] = {"FDINFO", "FS"};
  using Depends = DependsOn<Tree, Pipes, UnixSockets>;
  static absl::Status Precheck(DumpContext& ctx);
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
  // In the root, before the other tasks are forked: opens the descriptions
  // several processes share, for them to inherit.
  static absl::Status RestoreShared(RestoreContext& ctx);
};

// Writes files.img from the file table: every file the other plugins refer
// to. Runs last at dump; at restore the plugins read files.img themselves.
struct FileTableImage {
  static constexpr std::string_view kName = "files";
  static constexpr Stage kStage = Stage::kTask;
  static constexpr std::string_view kImages[] = {"FILES"};
  static constexpr Scope kScope = Scope::kTree;
  using Depends = DependsOn<Fds>;
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext&) { return absl::OkStatus(); }
};

// The fdinfo entries of task PID (through its ids image), read at restore.
absl::StatusOr<std::vector<criu::fdinfo_entry>> ReadTaskFdinfo(const std::string& images_dir,
                                                               pid_t pid);

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_FILES_FDS_H_
