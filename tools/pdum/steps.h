// The two halves shell freeze, shell thaw and shell beam are made of, each
// printing what it does as pdum-criu does: freezing a job (crpp::Freeze)
// and thawing it (crpp::Thaw), then waiting for it like a shell's `fg`.
#ifndef CRPP_TOOLS_PDUM_STEPS_H_
#define CRPP_TOOLS_PDUM_STEPS_H_

#include <sys/types.h>

#include <array>
#include <memory>
#include <string>

#include "api/criu.h"
#include "tools/pdum/args.h"
#include "tools/pdum/job_stdio.h"

namespace crpp::pdum {

struct FreezeStep {
  pid_t pid = 0;
  std::string dir;       // absolute, existing
  std::string log_path;  // absolute
  int verbosity = 4;
  bool leave_running = true;
  bool show_command = true;
  bool show_tail = true;
  bool validate_tty = true;
};

// Checks the job's terminal (unless !validate_tty), freezes it and says so.
// 0, or the exit code after printing why not.
int RunFreeze(const FreezeStep& step, const std::string& what);

struct ThawStep {
  std::string dir;       // absolute, existing
  std::string log_path;  // absolute; "" = DIR/restore.XXXXXX.log
  int verbosity = 4;
  std::string pidfile;
  bool detach = false;
  bool show_command = true;
  bool show_tail = true;
  std::array<std::string, 3> stdio_paths;  // --stdin, --stdout, --stderr
};

struct Thawing {
  int exit_code = 0;  // not 0: the thaw failed (printed)
  std::unique_ptr<Thawed> job;
  FrozenJob frozen;
  std::string log_path;
};

// Restores the job of step.dir (its stdio handed over as job_stdio.h says,
// its terminal thaw's) and prints its pid and the log path.
Thawing RunThaw(const ThawStep& step, const std::string& what);

// Waits for a job RunThaw restored as our child, as a shell's `fg` does:
// a terminal job gets the terminal's foreground until it ends; signals
// that end pdum-criu (Ctrl-C, SIGTERM, SIGHUP) are passed on to a job in a
// process group of its own. Returns the job's exit code (128 + signal when
// killed, as a shell's $?).
int WaitForJob(Thawing& thawing);

// Options freeze, thaw and beam share, and reading them.
absl::StatusOr<int> ParseVerbosity(const ParsedArgs& args);
// `path` made absolute against the current directory.
std::string Absolute(const std::string& path);
// Creates `dir` (and its parents) if need be; its absolute, resolved path.
absl::StatusOr<std::string> PrepareDir(const std::string& dir);

}  // namespace crpp::pdum

#endif  // CRPP_TOOLS_PDUM_STEPS_H_
