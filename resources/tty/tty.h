// Unix98 pseudo-terminals whose master (/dev/ptmx) and slave (/dev/pts/N)
// are both held by tasks of the tree, and terminals the tree uses but does
// not own, named with --external tty[RDEV:DEV].
//
// Dump writes CRIU's images: per pty two tty-info.img entries (the master's,
// id 2N+1, and the slave's, id 2N: index N, termios and locked termios,
// window size, packet mode, exclusive mode, the lock, the session and
// foreground group whose controlling terminal it is), a TTY entry in
// files.img per open description (with the REG entry of the same id that
// CRIU writes next to it: the path), and in tty-data.img the bytes queued in
// each direction (pty_queue.h), keyed, as CRIU keys them, by the id of the end
// they are read from. An external terminal gets one EXT_TTY entry (termios,
// window size, and from /proc the session it is the controlling terminal of)
// and its TTY entries. A pty slave whose master is outside the tree and that
// is not external is left to the fds plugin (the caller's terminal with
// --shell-job, else refused); a master without a slave in the tree, another
// devpts instance, a session leader of the tree whose controlling terminal
// would be lost, and a pty that is the controlling terminal of a session
// outside the tree are refused (tty_scan.h).
//
// Restore, in the root before the fork: opens /dev/ptmx until it gets index
// N (the kernel hands out the lowest free index; a taken one fails the
// restore), opens the slaves with TIOCGPTPEER, sets termios, window size and
// the queued bytes, then the locked termios, exclusive and packet mode and the
// lock; an external terminal is the one given with --inherit-fd
// fd[N]:tty[RDEV:DEV], which gets its termios and window size (and is taken
// from the caller's session if it was a session's terminal). The
// descriptions are inherited by every task (RestoreContext::Inherit) and the
// fds plugin puts them at their numbers. In each task, before it forks its
// children, a session leader takes its pty as controlling terminal
// (TIOCSCTTY) and the foreground group's leader makes its group the
// foreground one (TIOCSPGRP), so that the children inherit both.
#ifndef CRPP_RESOURCES_TTY_TTY_H_
#define CRPP_RESOURCES_TTY_TTY_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/tree/tree.h"

namespace crpp::resources {

struct Ttys {
  static constexpr std::string_view kName = "tty";
  static constexpr Stage kStage = Stage::kShared;
  static constexpr Scope kScope = Scope::kTree;
  static constexpr std::string_view kImages[] = {"TTY_INFO", "TTY_DATA"};
  using Depends = DependsOn<Tree>;
  // Refuses what cannot be dumped, from /proc alone.
  static absl::Status Precheck(DumpContext& ctx);
  static absl::Status Dump(DumpContext& ctx);
  // In the root: opens every pty and hands its descriptions to all tasks.
  static absl::Status Restore(RestoreContext& ctx);
  // In each task, before it forks its children: controlling terminal and
  // foreground group.
  static absl::Status RestoreBeforeChildren(RestoreContext& ctx);
};

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_TTY_TTY_H_
