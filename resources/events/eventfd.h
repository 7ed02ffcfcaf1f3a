// eventfd(2) descriptions (files.img entries of type EVENTFD): the counter,
// EFD_SEMAPHORE and O_NONBLOCK, from /proc/PID/fdinfo/N.
//
// CRIU's eventfd_file_entry has no field for the semaphore mode; we keep it
// in `flags` as EFD_SEMAPHORE (1). An eventfd is always O_RDWR (2), so the
// bit cannot be taken for an access mode: CRIU, which applies the flags with
// F_SETFL, ignores it.
//
// Restore creates each description in the root before the other processes
// are forked and hands it to the Fds plugin (RestoreContext::Inherit).
#ifndef CRPP_RESOURCES_EVENTS_EVENTFD_H_
#define CRPP_RESOURCES_EVENTS_EVENTFD_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/tree/tree.h"

namespace crpp::resources {

struct EventFd {
  static constexpr std::string_view kName = "eventfd";
  static constexpr Stage kStage = Stage::kShared;
  static constexpr Scope kScope = Scope::kTree;
  static constexpr bool kNoImages = true;  // its entries go to files.img
  using Depends = DependsOn<Tree>;
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_EVENTS_EVENTFD_H_
