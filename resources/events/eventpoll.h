// epoll descriptions (files.img entries of type EVENTPOLL): the epoll's
// flags and its watched set, one eventpoll_tfd_entry per target with the fd
// number it is registered under, its events (EPOLLET, EPOLLONESHOT, ... kept;
// a one-shot target that fired stays disarmed: see eventpoll_targets.cc) and
// its data, and the target's device, inode and position, from the "tfd:"
// lines of /proc/PID/fdinfo/N.
//
// A target may be an fd of any kind the engine dumps: pipes, FIFOs, UNIX
// sockets, event fds, inotify and fanotify instances, pidfds, character
// devices that poll (/dev/random, ...), and other epolls (nested: the kernel
// allows no cycle). It is named, as in CRIU, by its fd number in the epoll's
// owner: the first process of the tree (pstree order) holding the epoll.
// The precheck (before the tree is stopped) and the dump check with
// kcmp(KCMP_EPOLL_TFD) that the owner's fd of that number is the very file
// watched. When it is not (the target was registered under a number closed
// since) but the owner holds the file under another number, the watch is
// written under that one, as CRIU does (fdinfo shows the new number after
// restore); when the owner holds the file under no number (another process
// registered it, or only another process still holds it), or two watches
// would end up under one number, the dump is refused naming the pid, the
// epoll's fd and the target's number.
//
// Restore, in two steps. EventPoll, in the root before the other processes
// are forked, makes every epoll, empty, and hands it to the Fds plugin like
// the other shared descriptions. EventPollTargets then runs in each owner
// once the Fds plugin has put all of its fds in place, so that every target,
// whichever plugin restores it (pidfds and devices are opened by the owner
// itself), is at its number: the owner adds its epolls' targets under those
// numbers, an epoll watched by another before the one watching it. The ready
// list is the kernel's to rebuild: an edge-triggered target that is ready
// reports its edge once more after restore.
#ifndef CRPP_RESOURCES_EVENTS_EVENTPOLL_H_
#define CRPP_RESOURCES_EVENTS_EVENTPOLL_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/files/fds.h"
#include "resources/tree/tree.h"

namespace crpp::resources {

struct EventPoll {
  static constexpr std::string_view kName = "eventpoll";
  static constexpr Stage kStage = Stage::kShared;
  static constexpr Scope kScope = Scope::kTree;
  static constexpr bool kNoImages = true;  // its entries go to files.img
  using Depends = DependsOn<Tree>;
  // Refuses what Dump would, before the tree is stopped.
  static absl::Status Precheck(DumpContext& ctx);
  static absl::Status Dump(DumpContext& ctx);
  // Makes the epolls, empty.
  static absl::Status Restore(RestoreContext& ctx);
};

// The second step of an epoll's restore (see above); it dumps nothing.
struct EventPollTargets {
  static constexpr std::string_view kName = "eventpoll-targets";
  static constexpr Stage kStage = Stage::kFiles;
  static constexpr bool kNoImages = true;
  // Runs in each task after the Fds plugin has put its fds in place.
  using Depends = DependsOn<EventPoll, Fds>;
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
  static absl::Status Restore(RestoreContext& ctx);
};

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_EVENTS_EVENTPOLL_H_
