// timerfd_create(2) descriptions (files.img entries of type TIMERFD): the
// clock, the time left until the next expiry, the interval, the settime
// flags (TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET), the expirations not
// read yet (ticks) and O_NONBLOCK.
//
// Dump takes a copy of the description (pidfd_getfd) and asks it with
// timerfd_gettime, which brings a periodic timer's tick count and next
// expiry up to date (fdinfo alone shows a periodic timer that expired
// unread as disarmed); the task reads the same ticks either way. The time
// left is written relative, as fdinfo shows it.
//
// Restore, in the root before the other processes are forked: timerfd_create,
// timerfd_settime with the time that was left (made absolute again on the
// timer's clock when it was set with TFD_TIMER_ABSTIME, so that
// TFD_TIMER_CANCEL_ON_SET keeps working), then the unread ticks with the
// TFD_IOC_SET_TICKS ioctl (CONFIG_CHECKPOINT_RESTORE). The time the tree
// spent dumped does not count.
#ifndef CRPP_RESOURCES_EVENTS_TIMERFD_H_
#define CRPP_RESOURCES_EVENTS_TIMERFD_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/tree/tree.h"

namespace crpp::resources {

struct TimerFd {
  static constexpr std::string_view kName = "timerfd";
  static constexpr Stage kStage = Stage::kShared;
  static constexpr Scope kScope = Scope::kTree;
  static constexpr bool kNoImages = true;  // its entries go to files.img
  using Depends = DependsOn<Tree>;
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_EVENTS_TIMERFD_H_
