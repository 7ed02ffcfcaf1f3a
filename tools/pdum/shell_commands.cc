#include "tools/pdum/shell_commands.h"

#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_format.h"
#include "tools/pdum/args.h"
#include "tools/pdum/cleanup_watcher.h"
#include "tools/pdum/console.h"
#include "tools/pdum/steps.h"
#include "tools/pdum/target.h"
#include "tools/pdum/tty_check.h"

namespace crpp::pdum {
namespace {

using K = OptionSpec::Kind;

// pdum-criu's options, with its defaults (verbosity 4, the job left running
// by freeze, commands and log tails shown, terminals validated, beam's
// directory removed when the job ends).
constexpr OptionSpec kDir = {"dir", 'd', K::kValue, "DIR", "Directory of the image set."};
constexpr OptionSpec kPid = {"pid", 0, K::kValue, "PID", "PID of the job."};
constexpr OptionSpec kPgrep = {"pgrep", 0, K::kValue, "PATTERN",
                               "pgrep -f pattern naming exactly one process."};
constexpr OptionSpec kLogFile = {"log-file", 'l', K::kValue, "FILE",
                                 "Freeze log (default: DIR/freeze.PID.log)."};
constexpr OptionSpec kVerbosity = {"verbosity", 'v', K::kValue, "0..4",
                                   "Log level, as criu's -v [default: 4]."};
constexpr OptionSpec kLeaveRunning = {
    "leave-running", 0, K::kSwitch, "", "Keep the job running after the freeze.", true};
constexpr OptionSpec kShowCommand = {
    "show-command", 0, K::kSwitch, "", "Print the equivalent criu command line.", true,
    "hide-command"};
constexpr OptionSpec kShowTail = {
    "show-tail", 0,          K::kSwitch, "", "Print the log's last lines (after a failure too).",
    true,        "hide-tail"};
constexpr OptionSpec kValidateTty = {"validate-tty",
                                     0,
                                     K::kSwitch,
                                     "",
                                     "Refuse a job whose terminal cannot come back at thaw.",
                                     true};
constexpr OptionSpec kPidfile = {"pidfile", 0, K::kValue, "FILE",
                                 "Write the thawed job's pid into FILE."};
constexpr OptionSpec kDetach = {
    "detach", 0, K::kSwitch, "", "Return once the job runs, instead of waiting for it (criu -d).",
    false};
constexpr OptionSpec kStdin = {"stdin", 0, K::kValue, "FILE",
                               "Job's stdin, if it was a pipe (default: thaw's own)."};
constexpr OptionSpec kStdout = {"stdout", 0, K::kValue, "FILE",
                                "Job's stdout, if it was a pipe, appended to (default: ours)."};
constexpr OptionSpec kStderr = {"stderr", 0, K::kValue, "FILE",
                                "Job's stderr, if it was a pipe, appended to (default: ours)."};
constexpr OptionSpec kThawLog = {"log-file", 'l', K::kValue, "FILE",
                                 "Restore log (default: DIR/restore.XXXXXX.log)."};
constexpr OptionSpec kBeamDir = {"dir", 'd', K::kValue, "DIR",
                                 "Directory of the image set (default: a new temporary one)."};
constexpr OptionSpec kBeamLeaveRunning = {
    "leave-running",
    0,
    K::kSwitch,
    "",
    "Not supported: the thawed job takes the frozen one's pid.",
    false};
constexpr OptionSpec kCleanup = {
    "cleanup", 0, K::kSwitch, "", "Remove DIR once the beamed job exits.", true};

constexpr OptionSpec kFreezeOptions[] = {
    kDir, kPid, kPgrep, kLogFile, kVerbosity, kLeaveRunning, kShowCommand, kShowTail, kValidateTty};
constexpr OptionSpec kThawOptions[] = {kDir,   kPidfile, kThawLog, kVerbosity,   kDetach,
                                       kStdin, kStdout,  kStderr,  kShowCommand, kShowTail};
constexpr OptionSpec kBeamOptions[] = {
    kBeamDir, kPid,   kPgrep,  kLogFile, kVerbosity,   kBeamLeaveRunning, kCleanup,    kPidfile,
    kDetach,  kStdin, kStdout, kStderr,  kShowCommand, kShowTail,         kValidateTty};

int Help(const char* usage, const char* what, std::span<const OptionSpec> options) {
  printf("Usage: pdum-criu %s\n\n%s\n\n%s", usage, what, OptionsHelp(options).c_str());
  return 0;
}

// "Missing option '--dir' / '-d'." as Typer says it.
absl::Status Missing(const char* option) {
  return absl::InvalidArgumentError(absl::StrFormat("Missing option '%s'.", option));
}

// The target's pid, or the exit code after saying why there is none.
int Target(const ParsedArgs& args, const char* command, pid_t& pid) {
  auto target = ResolveTarget(args.Value("pid"), args.Value("pgrep"));
  if (target.ok()) {
    pid = *target;
    return 0;
  }
  if (target.status().code() == absl::StatusCode::kInvalidArgument) {
    return UsageError(command, target.status());
  }
  fflush(stdout);
  fprintf(stderr, "%s\n", std::string(target.status().message()).c_str());
  return kFailureExit;
}

// A FreezeStep from the options freeze and beam share.
absl::StatusOr<FreezeStep> FreezeStepFrom(const ParsedArgs& args, pid_t pid,
                                          const std::string& dir) {
  FreezeStep step;
  auto verbosity = ParseVerbosity(args);
  if (!verbosity.ok()) return verbosity.status();
  step.pid = pid;
  step.dir = dir;
  step.verbosity = *verbosity;
  step.log_path = args.Has("log-file") ? Absolute(args.Value("log-file"))
                                       : absl::StrFormat("%s/freeze.%d.log", dir, pid);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(step.log_path).parent_path(), ec);
  step.leave_running = args.On("leave-running");
  step.show_command = args.On("show-command");
  step.show_tail = args.On("show-tail");
  step.validate_tty = args.On("validate-tty");
  return step;
}

absl::StatusOr<ThawStep> ThawStepFrom(const ParsedArgs& args, const std::string& dir,
                                      bool log_option) {
  ThawStep step;
  auto verbosity = ParseVerbosity(args);
  if (!verbosity.ok()) return verbosity.status();
  step.dir = dir;
  step.verbosity = *verbosity;
  if (log_option && args.Has("log-file")) step.log_path = Absolute(args.Value("log-file"));
  step.pidfile = args.Value("pidfile");
  step.detach = args.On("detach");
  step.show_command = args.On("show-command");
  step.show_tail = args.On("show-tail");
  step.stdio_paths = {args.Value("stdin"), args.Value("stdout"), args.Value("stderr")};
  return step;
}

// What beam's thaw needs and can be known before the freeze: a terminal
// for a terminal job, and the files that will replace the job's pipes.
absl::Status BeamCanThaw(pid_t pid, const ThawStep& thaw) {
  const std::string terminal = CheckJobTerminal(pid).terminal;
  if (!terminal.empty() && !isatty(0) && !isatty(1) && !isatty(2)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "pid %d runs on the terminal %s, and beam runs on no terminal to give it", pid, terminal));
  }
  const char* kNames[] = {"stdin", "stdout", "stderr"};
  for (int n = 0; n < 3; ++n) {
    const std::string& path = thaw.stdio_paths[n];
    if (path.empty()) continue;
    // stdin must exist; stdout and stderr may be created, in a directory that exists.
    const std::string must_exist =
        n == 0 ? path : std::filesystem::path(Absolute(path)).parent_path().string();
    if (access(must_exist.c_str(), n == 0 ? R_OK : W_OK) != 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--%s %s: %s: %s", kNames[n], path, must_exist, strerror(errno)));
    }
  }
  return absl::OkStatus();
}

bool EmptyDir(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::is_empty(dir, ec) && !ec;
}

}  // namespace

int ShellFreeze(const std::vector<std::string>& words) {
  constexpr char kName[] = "shell freeze";
  auto args = ParseArgs(kFreezeOptions, words);
  if (!args.ok()) return UsageError(kName, args.status());
  if (args->help()) {
    return Help("shell freeze --dir DIR (--pid PID | --pgrep PATTERN) [OPTIONS]",
                "Freeze a running shell job into a directory of images (crpp, in-process).",
                kFreezeOptions);
  }
  if (!args->Has("dir")) return UsageError(kName, Missing("--dir' / '-d"));
  if (auto v = ParseVerbosity(*args); !v.ok()) return UsageError(kName, v.status());
  pid_t pid = 0;
  if (int code = Target(*args, kName, pid); code != 0) return code;
  auto dir = PrepareDir(args->Value("dir"));
  if (!dir.ok()) return Failed("Freeze", dir.status(), "", "", false);
  auto step = FreezeStepFrom(*args, pid, *dir);
  if (!step.ok()) return UsageError(kName, step.status());
  if (int code = RunFreeze(*step, "Freeze"); code != 0) return code;
  printf("Thaw it with: pdum-criu shell thaw --dir %s\n", ShellQuote(*dir).c_str());
  return 0;
}

int ShellThaw(const std::vector<std::string>& words) {
  constexpr char kName[] = "shell thaw";
  auto args = ParseArgs(kThawOptions, words);
  if (!args.ok()) return UsageError(kName, args.status());
  if (args->help()) {
    return Help("shell thaw --dir DIR [OPTIONS]",
                "Restore a frozen job here and wait for it (--detach: return once it runs).\n"
                "Its terminal becomes this one; its stdio pipes become thaw's own stdin, stdout\n"
                "and stderr, or the files --stdin/--stdout/--stderr name (FIFOs wait for their\n"
                "other side, as shell redirections do).",
                kThawOptions);
  }
  if (!args->Has("dir")) return UsageError(kName, Missing("--dir' / '-d"));
  char* real = realpath(Absolute(args->Value("dir")).c_str(), nullptr);
  if (real == nullptr) {
    return Failed("Thaw",
                  absl::NotFoundError(
                      absl::StrFormat("Image directory does not exist: %s", args->Value("dir"))),
                  "", "", false);
  }
  const std::string dir = real;
  free(real);
  auto step = ThawStepFrom(*args, dir, /*log_option=*/true);
  if (!step.ok()) return UsageError(kName, step.status());
  Thawing thawing = RunThaw(*step, "Thaw");
  if (thawing.exit_code != 0) return thawing.exit_code;
  return step->detach ? 0 : WaitForJob(thawing);
}

int ShellBeam(const std::vector<std::string>& words) {
  constexpr char kName[] = "shell beam";
  auto args = ParseArgs(kBeamOptions, words);
  if (!args.ok()) return UsageError(kName, args.status());
  if (args->help()) {
    return Help("shell beam (--pid PID | --pgrep PATTERN) [--dir DIR] [OPTIONS]",
                "Freeze a job and thaw it here at once: it leaves its terminal and pipes for\n"
                "this one's (or --stdin/--stdout/--stderr), as shell thaw hands them over.",
                kBeamOptions);
  }
  if (args->On("leave-running")) {
    return UsageError(kName, absl::InvalidArgumentError(
                                 "--leave-running: the beamed job takes the pid of the frozen "
                                 "one, which must end first (shell freeze --leave-running keeps "
                                 "a job running)"));
  }
  auto thaw = ThawStepFrom(*args, "", /*log_option=*/false);
  if (!thaw.ok()) return UsageError(kName, thaw.status());
  pid_t pid = 0;
  if (int code = Target(*args, kName, pid); code != 0) return code;
  // The freeze ends the job: what would make the thaw fail is checked first.
  if (absl::Status s = BeamCanThaw(pid, *thaw); !s.ok()) {
    return Failed("Beam", s, "nothing was frozen; the job runs on", "", false);
  }
  const bool cleanup = args->On("cleanup");
  std::string dir;
  if (args->Has("dir")) {
    auto prepared = PrepareDir(args->Value("dir"));
    if (!prepared.ok()) return Failed("Beam", prepared.status(), "", "", false);
    dir = *prepared;
    // --cleanup removes the whole directory: never one with files of someone else's.
    if (cleanup && !EmptyDir(dir)) {
      return UsageError(kName, absl::InvalidArgumentError(absl::StrFormat(
                                   "--cleanup removes %s once the job exits, and it is not "
                                   "empty: name a new directory, or pass --no-cleanup",
                                   dir)));
    }
  } else {
    const char* tmp = getenv("TMPDIR");
    std::string templ =
        std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/pdum-criu-beam-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      return Failed("Beam",
                    absl::InternalError(absl::StrFormat("mkdtemp %s: %s", templ, strerror(errno))),
                    "", "", false);
    }
    dir = templ;
    printf("Beam images directory: %s\n", dir.c_str());
  }
  auto freeze = FreezeStepFrom(*args, pid, dir);
  if (!freeze.ok()) return UsageError(kName, freeze.status());
  freeze->leave_running = false;
  thaw->dir = dir;
  if (int code = RunFreeze(*freeze, "Beam freeze"); code != 0) return code;
  Thawing thawing = RunThaw(*thaw, "Beam thaw");
  if (thawing.exit_code != 0) {
    fprintf(stderr, "The images stay in %s: pdum-criu shell thaw --dir %s tries again.\n",
            dir.c_str(), ShellQuote(dir).c_str());
    return thawing.exit_code;
  }
  if (cleanup) {
    auto watcher = StartCleanupWatcher(thawing.job->completion_fd(), dir);
    if (watcher.ok()) {
      printf("Cleanup: %s goes once pid %d exits (watcher pid %d)\n", dir.c_str(),
             thawing.job->pid(), *watcher);
    } else {
      fprintf(stderr, "Cleanup: %s stays (%s)\n", dir.c_str(),
              std::string(watcher.status().message()).c_str());
    }
  }
  printf("Beam complete. Restore log: %s\n", thawing.log_path.c_str());
  fflush(stdout);
  return thaw->detach ? 0 : WaitForJob(thawing);
}

}  // namespace crpp::pdum
