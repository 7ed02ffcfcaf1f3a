// The freeze half, and what the steps share.
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_format.h"
#include "core/strings.h"
#include "tools/pdum/console.h"
#include "tools/pdum/steps.h"
#include "tools/pdum/tty_check.h"

namespace crpp::pdum {

absl::StatusOr<int> ParseVerbosity(const ParsedArgs& args) {
  const std::string text = args.Value("verbosity", "4");
  int v = -1;
  if (!ParseInt(std::string_view(text), v) || v < 0 || v > 4) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--verbosity %s: expected a level from 0 to 4", text));
  }
  return v;
}

std::string Absolute(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char* cwd = getcwd(nullptr, 0);
  std::string out = cwd != nullptr ? std::string(cwd) + "/" + path : path;
  free(cwd);
  return out;
}

absl::StatusOr<std::string> PrepareDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(Absolute(dir), ec);
  char* real = realpath(Absolute(dir).c_str(), nullptr);
  if (real == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat("cannot use %s as the images directory: %s",
                                                      dir, ec ? ec.message() : strerror(errno)));
  }
  std::string out = real;
  free(real);
  return out;
}

int RunFreeze(const FreezeStep& step, const std::string& what) {
  if (step.validate_tty) {
    TtyVerdict verdict = CheckJobTerminal(step.pid);
    if (!verdict.status.ok()) {
      fflush(stdout);
      fprintf(stderr, "Cannot freeze pid %d: %s\nHint: %s\n", step.pid,
              std::string(verdict.status.message()).c_str(), verdict.hint.c_str());
      return kFailureExit;
    }
    if (!verdict.terminal.empty()) {
      printf("Pid %d runs on the terminal %s: thaw gives it back on the terminal thaw runs on.\n",
             step.pid, verdict.terminal.c_str());
    }
  }
  printf("Freezing PID %d into %s\n", step.pid, step.dir.c_str());
  if (step.show_command) {
    std::vector<std::string> criu = {
        "criu",       "dump",        "-D",
        step.dir,     "-t",          std::to_string(step.pid),
        "-o",         step.log_path, absl::StrFormat("-v%d", step.verbosity),
        "--shell-job"};
    if (step.leave_running) criu.push_back("--leave-running");
    printf("$ %s\n", ShellJoin(criu).c_str());
  }
  fflush(stdout);
  // A shell job's root lives in its shell's session and process group:
  // --shell-job lets the dump take it (it is harmless for a job that leads
  // a session of its own).
  auto frozen = Freeze(step.pid, step.dir,
                       {.leave_running = step.leave_running,
                        .shell_job = true,
                        .log_path = step.log_path,
                        .verbosity = step.verbosity});
  if (!frozen.ok()) {
    std::string hint;
    if (frozen.status().code() == absl::StatusCode::kPermissionDenied) {
      hint = "pdum-criu doctor lists what this process lacks.";
    }
    return Failed(what, frozen.status(), hint, step.log_path, step.show_tail);
  }
  printf("Freeze complete. Log: %s\n", step.log_path.c_str());
  printf("%s\n", step.leave_running
                     ? "The job runs on (--leave-running): stop it before thawing its images."
                     : "The job is gone (--no-leave-running).");
  if (step.show_tail) PrintLogTail(step.log_path, 5);
  fflush(stdout);
  return 0;
}

}  // namespace crpp::pdum
