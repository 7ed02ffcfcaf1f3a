// inotify instances (files.img entries of type INOTIFY): every open
// description with its flags and its watches: watch descriptor, mask, and
// the watched inode as a file handle plus the path it resolves to at dump.
//
// Dump reads the watches from /proc/PID/fdinfo and resolves each file handle
// to a path (open_by_handle_at on the mount of the watched device). Restore
// makes each instance in the root before the others are forked and adds the
// watches again by path, with the same watch descriptor numbers (the kernel
// hands them out in a cycle, so a number is reached by adding and removing);
// the descriptions go to the Fds plugin through RestoreContext::Inherit.
// Events queued in an instance at dump time are not kept (as with CRIU): the
// kernel cannot queue them again; the dump logs a warning when there are.
#ifndef CRPP_RESOURCES_FSNOTIFY_INOTIFY_H_
#define CRPP_RESOURCES_FSNOTIFY_INOTIFY_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/tree/tree.h"

namespace crpp::resources {

struct Inotify {
  static constexpr std::string_view kName = "inotify";
  static constexpr Stage kStage = Stage::kShared;
  static constexpr Scope kScope = Scope::kTree;
  static constexpr bool kNoImages = true;  // its entries are in files.img
  using Depends = DependsOn<Tree>;
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_FSNOTIFY_INOTIFY_H_
