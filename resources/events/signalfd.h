// signalfd(2) descriptions (files.img entries of type SIGNALFD): the set of
// signals it reads (fdinfo "sigmask") and O_NONBLOCK. The signals pending
// for the tasks are the task plugin's: a signalfd reads them after restore.
//
// Restore creates each description in the root before the other processes
// are forked and hands it to the Fds plugin (RestoreContext::Inherit).
#ifndef CRPP_RESOURCES_EVENTS_SIGNALFD_H_
#define CRPP_RESOURCES_EVENTS_SIGNALFD_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/tree/tree.h"

namespace crpp::resources {

struct SignalFd {
  static constexpr std::string_view kName = "signalfd";
  static constexpr Stage kStage = Stage::kShared;
  static constexpr Scope kScope = Scope::kTree;
  static constexpr bool kNoImages = true;  // its entries go to files.img
  using Depends = DependsOn<Tree>;
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_EVENTS_SIGNALFD_H_
