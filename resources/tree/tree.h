// The process tree (pstree.img) and each task's kernel-object ids
// (ids-PID.img): every process below the root with its parent, session and
// process group; zombies too. At restore each task recreates its session or
// group right after it is forked (the driver forks the tree). A child that
// shares its parent's fd table or fs (clone(CLONE_FILES), clone(CLONE_FS))
// gets the parent's files_id or fs_id, and restore forks it with that flag;
// processes sharing memory (CLONE_VM, and so maybe signal handlers), or an
// fd table or fs other than along the parent links, are refused before they
// are touched, naming both pids.
#ifndef CRPP_RESOURCES_TREE_TREE_H_
#define CRPP_RESOURCES_TREE_TREE_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/inventory/inventory.h"

namespace crpp::resources {

struct Tree {
  static constexpr std::string_view kName = "tree";
  static constexpr Stage kStage = Stage::kTree;
  static constexpr std::string_view kImages[] = {"PSTREE", "IDS"};
  using Depends = DependsOn<Inventory>;
  static absl::Status Precheck(DumpContext& ctx);
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_TREE_TREE_H_
