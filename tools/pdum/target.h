// Which process a command acts on: --pid N, or --pgrep PATTERN matched
// against full command lines as `pgrep -f` does (POSIX extended regular
// expressions), without running pgrep.
#ifndef CRPP_TOOLS_PDUM_TARGET_H_
#define CRPP_TOOLS_PDUM_TARGET_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace crpp::pdum {

struct ProcessMatch {
  pid_t pid = 0;
  std::string cmdline;  // its arguments joined by spaces
};

// The processes whose command line PATTERN matches, by pid. This process and
// its ancestors are left out: their own command lines hold the pattern (the
// pdum-criu call, the shell that runs it), and a job never freezes its caller.
// Kernel threads (no command line) never match.
absl::StatusOr<std::vector<ProcessMatch>> MatchProcesses(const std::string& pattern);

// The target of `--pid PID_TEXT` or `--pgrep PATTERN` (exactly one of them
// non-empty). InvalidArgument for a bad pid or pattern or both/none given;
// NotFound when no process matches or PID does not exist;
// FailedPrecondition, listing them, when several match.
absl::StatusOr<pid_t> ResolveTarget(const std::string& pid_text, const std::string& pattern);

}  // namespace crpp::pdum

#endif  // CRPP_TOOLS_PDUM_TARGET_H_
