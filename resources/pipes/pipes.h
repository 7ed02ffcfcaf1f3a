// Anonymous pipes (files.img entries of type PIPE, pipes-data.img): every
// open description of every pipe the tree holds, with the bytes buffered in
// it, the pipe's size and each end's O_NONBLOCK.
//
// Dump reads a pipe's buffer without consuming it: it opens a read end of its
// own through /proc/PID/fd/N and tee(2)s the buffer into a pipe of its own.
// Restore creates each pipe in the root task before the others are forked,
// refills it, and hands its ends to the Fds plugin through
// RestoreContext::inherited, so every holder gets the same description.
// Named FIFOs are refused (not supported yet).
#ifndef CRPP_RESOURCES_PIPES_PIPES_H_
#define CRPP_RESOURCES_PIPES_PIPES_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/tree/tree.h"

namespace crpp::resources {

struct Pipes {
  static constexpr std::string_view kName = "pipes";
  static constexpr Stage kStage = Stage::kShared;
  static constexpr Scope kScope = Scope::kTree;
  static constexpr std::string_view kImages[] = {"PIPES_DATA"};
  using Depends = DependsOn<Tree>;
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_PIPES_PIPES_H_
