// beam --cleanup: a small process that outlives pdum-criu, waits for the
// beamed job to end and removes its images directory.
//
// It waits on a pidfd of the job (never on a pid, which another process
// could take once the job is gone), runs in a session of its own (closing
// the terminal does not end it) and is nobody's child in pdum-criu (it is
// reparented to init, or to the nearest child subreaper). It is
// /proc/self/exe started again with the hidden command below, so that it
// runs a fresh program image whatever pdum-criu did before.
#ifndef CRPP_TOOLS_PDUM_CLEANUP_WATCHER_H_
#define CRPP_TOOLS_PDUM_CLEANUP_WATCHER_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace crpp::pdum {

// The hidden command: pdum-criu internal-cleanup-watcher PIDFD DIR.
inline constexpr char kWatcherCommand[] = "internal-cleanup-watcher";

// Starts the watcher over `pidfd` (ours; it gets a copy) and `dir`
// (absolute). Returns its pid.
absl::StatusOr<pid_t> StartCleanupWatcher(int pidfd, const std::string& dir);

// The watcher itself, given ARGS = {PIDFD, DIR}: returns its exit code.
int RunCleanupWatcher(const std::vector<std::string>& args);

}  // namespace crpp::pdum

#endif  // CRPP_TOOLS_PDUM_CLEANUP_WATCHER_H_
