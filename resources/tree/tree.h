// The process tree (pstree.img) and each task's kernel-object ids
// (ids-PID.img). For now the tree is one single-threaded process: a process
// with threads or children is refused before it is touched.
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
