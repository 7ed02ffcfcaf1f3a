// fanotify groups (files.img entries of type FANOTIFY): every open
// description with its fanotify_init flags and event_f_flags, and its marks,
// each with its mask, ignored mask and mark flags:
//   inode marks, by file handle and the path it resolves to at dump (as the
//     inotify plugin does for its watches);
//   mount marks, by mount id and the mount point it names in the holder;
//   filesystem marks (FAN_MARK_FILESYSTEM): CRIU's format has no kind for
//     them, so they are written as mount marks of a mount of that filesystem
//     with FAN_MARK_FILESYSTEM among the mark flags, which CRIU's restore
//     refuses (the kernel rejects both kinds at once) instead of setting a
//     mount mark in their place.
// Marks of any other kind (mount namespace, user namespace) are refused.
//
// Restore makes each group in the root before the others are forked, with
// the same flags, and adds the marks again by path, the oldest first, so
// that fdinfo lists them as before; the descriptions go to the Fds plugin
// through RestoreContext::Inherit. Events queued in a group at dump time are
// lost (the kernel cannot queue them again), as with inotify and CRIU: the
// dump logs a warning when there are some.
#ifndef CRPP_RESOURCES_FSNOTIFY_FANOTIFY_H_
#define CRPP_RESOURCES_FSNOTIFY_FANOTIFY_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/tree/tree.h"

namespace crpp::resources {

struct Fanotify {
  static constexpr std::string_view kName = "fanotify";
  static constexpr Stage kStage = Stage::kShared;
  static constexpr Scope kScope = Scope::kTree;
  static constexpr bool kNoImages = true;  // its entries are in files.img
  using Depends = DependsOn<Tree>;
  // Refuses what Dump would (a mark without a path, a kind of mark not
  // supported) before the tree is stopped.
  static absl::Status Precheck(DumpContext& ctx);
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

inline bool IsFanotify(std::string_view link) { return link == "anon_inode:[fanotify]"; }

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_FSNOTIFY_FANOTIFY_H_
