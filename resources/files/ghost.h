// Deleted ("ghost") regular files the tree still holds open: CRIU's
// remap-fpath.img links each such file description (a reg entry of
// files.img, named by the file's old path) to a ghost-file-N.img, which holds
// the file's mode, owner, times, size and contents.
//
// Dump walks every task's fds before the Fds plugin: each description of an
// unlinked file gets its files.img entry here (ctx.fd_ids), once even when
// several processes share it; each unlinked inode gets one ghost image, up to
// --ghost-limit bytes. A file unlinked from its path that other hard links
// keep is linked back next to it (link_remap.N, a LINKED remap) with
// --link-remap, and refused without it; a ghost larger than the limit is
// refused; directories removed while open are refused by Fds.
//
// Restore, in the root before the other tasks are forked: each ghost is
// written into its old directory under a temporary name, renamed to its old
// name when that is free, every description of it is opened there with its
// flags and offset and handed to the Fds plugin (RestoreContext::Inherit),
// and the name is unlinked again: the tasks hold an unlinked file with the
// same contents, and nothing is left in the directory.
#ifndef CRPP_RESOURCES_FILES_GHOST_H_
#define CRPP_RESOURCES_FILES_GHOST_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/pipes/pipes.h"
#include "resources/tree/tree.h"

namespace crpp::resources {

struct Ghosts {
  static constexpr std::string_view kName = "ghosts";
  static constexpr Stage kStage = Stage::kShared;
  static constexpr Scope kScope = Scope::kTree;
  static constexpr std::string_view kImages[] = {"REMAP_FPATH", "GHOST_FILE"};
  using Depends = DependsOn<Tree, Pipes>;
  static absl::Status Precheck(DumpContext& ctx);
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
  // After a successful restore: removes the names --link-remap gave files at
  // dump (a failed restore keeps them, for the next try).
  static absl::Status RemoveLinks(const std::string& images_dir);
};

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_FILES_GHOST_H_
