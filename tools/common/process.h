// Processes for the demo and the benchmark: starting a program the way a
// checkpoint target must be started, waiting for it, and not leaving it
// behind.
//
// A target of crpp must hold nothing crpp cannot dump yet: Spawn() gives it
// its own session, stdin from /dev/null, stdout and stderr in regular files,
// default signal dispositions, an empty signal mask and no other fds.
#ifndef CRPP_TOOLS_COMMON_PROCESS_H_
#define CRPP_TOOLS_COMMON_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace crpp::tools {

// The path of PATH (e.g. "tools/demo/demo_counter") in this binary's runfiles
// ($RUNFILES_DIR, $TEST_SRCDIR, or /proc/self/exe.runfiles), else the file of
// the same name next to this binary. An error when none is executable.
absl::StatusOr<std::string> FindRunfile(const std::string& path);

// Waits up to TIMEOUT_MS for our child PID to end; returns its wait status.
// NotFound when PID is not (or no longer) our child: somebody reaped it.
absl::StatusOr<int> WaitExit(pid_t pid, int timeout_ms);

// After a dump that killed our child PID: waits until PID is gone and
// reaped, by us here or by crpp::Dump itself (the tracer reaps the task it
// kills when it is also its parent, as when the caller started it). Returns
// which of the two, for messages.
absl::StatusOr<std::string> WaitDumpedChildGone(pid_t pid, int timeout_ms);

// "exit status 0", "killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int status);

// The state letter of /proc/PID/stat ('R', 'S', 'Z', ...), or 0 if PID is gone.
char ProcState(pid_t pid);

// The parent pid of PID, or 0 if PID is gone.
pid_t ParentOf(pid_t pid);

// Seconds elapsed since FROM.
double SecondsSince(std::chrono::steady_clock::time_point from);

// A child process we must not leave behind: unless Reaped() was called, the
// destructor kills it (SIGKILL, by pid) and reaps it. Only for our own
// children, whose pid cannot be reused before we reap them. After
// KillGuardedOnSignals(), SIGINT, SIGTERM and SIGHUP kill them too.
class ChildGuard {
 public:
  ChildGuard() = default;
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  ~ChildGuard() { Kill(); }
  // Takes care of PID (after killing the one held before, if any).
  void Reset(pid_t pid);
  // The child was reaped: nothing to do any more.
  void Reaped();
  pid_t pid() const { return pid_; }

 private:
  void Kill();
  pid_t pid_ = 0;
};

// Starts ARGV[0] with ARGV in a new session, stdin /dev/null, stdout and
// stderr appended to the two files, and no other fds, and hands it to GUARD
// (with no gap in which a signal could end us and leave it behind).
absl::Status Spawn(const std::vector<std::string>& argv, const std::string& stdout_path,
                   const std::string& stderr_path, ChildGuard& guard);

// Installs handlers for SIGINT, SIGTERM and SIGHUP (Ctrl-C, a test's timeout)
// that SIGKILL every child a ChildGuard holds, then die of the signal.
void KillGuardedOnSignals();

// While it lives, a watchdog over a call that may not return (a library
// call into the engine): if SECONDS pass first, SIGALRM prints "WHAT did not
// finish within SECONDS s" to stderr, kills every child a ChildGuard holds
// and ends this process with status 1. One at a time (it uses alarm()).
class Watchdog {
 public:
  Watchdog(int seconds, const std::string& what);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
};

}  // namespace crpp::tools

#endif  // CRPP_TOOLS_COMMON_PROCESS_H_
