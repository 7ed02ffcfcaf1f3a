// epoll descriptions (files.img entries of type EVENTPOLL): the epoll's
// flags and its watched set, one eventpoll_tfd_entry per target with the fd
// number it was registered under, its events (EPOLLET, EPOLLONESHOT, ... kept)
// and its data, from the "tfd:" lines of /proc/PID/fdinfo/N.
//
// A target is named, as in CRIU, by its fd number in the epoll's owner: the
// first process of the tree (pstree order) holding the epoll. The precheck
// (before the tree is stopped) and the dump check with kcmp(KCMP_EPOLL_TFD)
// that the owner's fd of that number is the very file watched, and refuse
// the epoll otherwise (a target registered by another process, or closed and
// its number reused since), as they refuse targets that are not pipes,
// eventfds, timerfds or signalfds (watched regular files cannot exist;
// sockets, ttys and nested epolls are not supported yet).
//
// Restore, in the root before the other processes are forked: epoll_create1,
// then each target is added under its own fd number: the root puts the
// target's description (inherited from the pipes and events plugins) at that
// number for the time of EPOLL_CTL_ADD (an epoll item lives as long as its
// file, not its fd). The epoll is handed to the Fds plugin like the others.
// The ready list is the kernel's to rebuild: an edge-triggered target that is
// ready reports its edge once more after restore.
#ifndef CRPP_RESOURCES_EVENTS_EVENTPOLL_H_
#define CRPP_RESOURCES_EVENTS_EVENTPOLL_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/events/eventfd.h"
#include "resources/events/signalfd.h"
#include "resources/events/timerfd.h"
#include "resources/pipes/pipes.h"
#include "resources/tree/tree.h"

namespace crpp::resources {

struct EventPoll {
  static constexpr std::string_view kName = "eventpoll";
  static constexpr Stage kStage = Stage::kShared;
  static constexpr Scope kScope = Scope::kTree;
  static constexpr bool kNoImages = true;  // its entries go to files.img
  // Its targets must be dumped (ctx.fd_ids) and restored (inherited) first.
  using Depends = DependsOn<Tree, Pipes, EventFd, TimerFd, SignalFd>;
  // Refuses what Dump would, before the tree is stopped.
  static absl::Status Precheck(DumpContext& ctx);
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_EVENTS_EVENTPOLL_H_
