// Named FIFOs (files.img entries of type FIFO, each with the regular-file
// entry of its path; fifo-data.img): every open description of every FIFO
// the tree holds, with the bytes buffered in it.
//
// Dump reads the buffer as for anonymous pipes (without consuming it).
// Restore runs in the root task before the others are forked: it opens the
// FIFO at its path once read-write (so no open blocks and the buffer has a
// holder), refills it, opens each description with its own access mode and
// flags, and hands them to the Fds plugin through RestoreContext::Inherit.
// The FIFO itself must exist at its path, as any file the tree had open.
#ifndef CRPP_RESOURCES_PIPES_FIFO_H_
#define CRPP_RESOURCES_PIPES_FIFO_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/pipes/pipes.h"

namespace crpp::resources {

struct Fifos {
  static constexpr std::string_view kName = "fifos";
  static constexpr Stage kStage = Stage::kShared;
  static constexpr Scope kScope = Scope::kTree;
  static constexpr std::string_view kImages[] = {"FIFO_DATA"};
  using Depends = DependsOn<Tree, Pipes>;
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_PIPES_FIFO_H_
