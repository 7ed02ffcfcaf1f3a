// criu: the command-line front end, with criu's commands and options.
//
// Commands that are not implemented yet say so and exit 1; so does any option
// a command does not support yet. Nothing is ignored silently.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/dump/dump.h"
#include "core/images/crit_codec.h"
#include "core/images/image_io.h"
#include "core/kerndat/probe.h"
#include "core/log.h"
#include "core/options.h"
#include "core/restore/restore.h"
#include "stats.pb.h"

namespace crpp {
namespace {

// Options every implemented command accepts (canonical long names).
constexpr std::string_view kCommonOptions[] = {
    "verbosity", "log-file", "images-dir", "work-dir", "log-pid",
};

constexpr std::string_view kVersion = "Version: 4.0\nGitID: crpp-0.1\n";

std::vector<std::string_view> Supported(std::initializer_list<std::string_view> extra) {
  std::vector<std::string_view> out(std::begin(kCommonOptions), std::end(kCommonOptions));
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

// Errors reach the log; when the log is a file (or -v0 silenced it), a
// one-line summary also reaches the terminal.
int Fail(std::string_view command, const absl::Status& status) {
  log::Error("%s: %s", std::string(command), std::string(status.message()));
  if (log::LogsToFile()) {
    fprintf(stderr, "Error (%s): %s (see %s)\n", std::string(command).c_str(),
            std::string(status.message()).c_str(), log::LogPath().c_str());
  } else if (!log::Enabled(log::Level::kError)) {
    fprintf(stderr, "Error (%s): %s\n", std::string(command).c_str(),
            std::string(status.message()).c_str());
  }
  return 1;
}

int Check(const Options& o) {
  kerndat::CheckReport report;
  if (!o.features.empty()) {
    report.exit_code = 0;
    for (const std::string& f : o.features) {
      kerndat::CheckReport one = kerndat::RunFeatureCheck(f);
      report.text += one.text;
      if (one.exit_code != 0) report.exit_code = one.exit_code;
    }
  } else {
    report = kerndat::RunCheck(o.check_all, o.check_extra, o.check_experimental);
  }
  fputs(report.text.c_str(), stdout);
  log::Debug("check report:\n%s", report.text);
  log::Info("check: exit code %d", report.exit_code);
  return report.exit_code;
}

void PrintDumpStats(const DumpStats& s) {
  printf("Displaying dump stats:\n");
  printf("Freezing time: %llu us\n", static_cast<unsigned long long>(s.freezing_us));
  printf("Frozen time: %llu us\n", static_cast<unsigned long long>(s.frozen_us));
  printf("Memory dump time: %llu us\n", static_cast<unsigned long long>(s.memdump_us));
  printf("Memory write time: %llu us\n", static_cast<unsigned long long>(s.memwrite_us));
  printf("Memory pages scanned: %llu (0x%llx)\n", static_cast<unsigned long long>(s.pages_scanned),
         static_cast<unsigned long long>(s.pages_scanned));
  printf("Memory pages written: %llu (0x%llx)\n", static_cast<unsigned long long>(s.pages_written),
         static_cast<unsigned long long>(s.pages_written));
}

absl::Status WritePidfile(const Options& o, pid_t pid) {
  if (!o.pidfile) return absl::OkStatus();
  std::string path = ResolveWorkPath(o, *o.pidfile);
  FILE* f = fopen(path.c_str(), "w");
  if (f == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat("cannot write pidfile %s", path));
  }
  fprintf(f, "%d", pid);
  return fclose(f) == 0 ? absl::OkStatus()
                        : absl::InternalError(absl::StrFormat("cannot write pidfile %s", path));
}

int DumpCommand(const Options& o) {
  DumpRequest req;
  req.pid = o.tree_pid;
  req.images_dir = o.images_dir;
  req.leave_running = o.leave_running;
  req.leave_stopped = o.leave_stopped;
  req.shell_job = o.shell_job;
  for (const std::string& e : o.external) {
    // unix[INO]: a UNIX socket outside the tree (resources/sockets/unix.h);
    // tty[RDEV:DEV]: a terminal the tree uses but does not own (tty.h).
    if (!(e.starts_with("unix[") || e.starts_with("tty[")) || !e.ends_with("]")) {
      return Fail("dump",
                  absl::UnimplementedError(absl::StrFormat(
                      "--external %s: only unix[INO] and tty[RDEV:DEV] are supported yet", e)));
    }
  }
  req.external = o.external;
  req.file_locks = o.file_locks;
  req.link_remap = o.link_remap;
  req.ghost_limit = o.ghost_limit;
  auto stats = Dump(req);
  if (!stats.ok()) return Fail("dump", stats.status());
  if (auto s = WritePidfile(o, req.pid); !s.ok()) return Fail("dump", s);
  if (o.display_stats) PrintDumpStats(*stats);
  log::Info("Dumping finished successfully");
  return 0;
}

int RestoreCommand(const Options& o) {
  RestoreRequest req;
  req.images_dir = o.images_dir;
  req.shell_job = o.shell_job;
  req.on_running = [&o](pid_t pid) { return WritePidfile(o, pid); };
  for (const std::string& arg : o.inherit_fd) {
    auto in = ParseInheritFd(arg);
    if (!in.ok()) return Fail("restore", in.status());
    req.inherit_fds.push_back(*in);
  }
  auto r = Restore(req);
  if (!r.ok()) return Fail("restore", r.status());
  if (o.display_stats) {
    printf("Displaying restore stats:\n");
    printf("Restore time: %llu us\n", static_cast<unsigned long long>(r->restore_us));
    auto stats = images::ReadAll<criu::stats_entry>(
        ResolveWorkPath(o, o.images_dir) + "/stats-restore", images::Stats());
    if (stats.ok() && !stats->empty() && stats->front().has_restore()) {
      printf("Memory pages restored: %llu\n",
             static_cast<unsigned long long>(stats->front().restore().pages_restored()));
    }
  }
  log::Info("Restore finished successfully, pid %d", r->pid);
  if (o.restore_detached) return 0;
  // Like criu: stay the parent of the restored task until it exits.
  int status = 0;
  while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR) {
  }
  // The init of a pid namespace (criu-ns restore): its end would kill every
  // process left in the namespace (criu-ns dump's holder, waiting for its
  // dump to end), so it ends after them.
  if (getpid() == 1) {
    while (wait(nullptr) > 0 || errno == EINTR) {
    }
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

// criu's old `show` command, kept as an alias of `crit show`.
int Show(const Options& o) {
  if (o.command_args.size() != 1) {
    return Fail("show", absl::InvalidArgumentError("usage: criu show IMAGE-FILE"));
  }
  auto reader = images::ImageReader::Open(ResolveWorkPath(o, o.command_args[0]));
  if (!reader.ok()) return Fail("show", reader.status());
  auto doc = images::DecodeImage(**reader, {.pretty = true});
  if (!doc.ok()) return Fail("show", doc.status());
  printf("%s\n", doc->Dump(4).c_str());
  return 0;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = ParseCommandLine(args, ParseEnvironmentFromProcess());
  if (!parsed.ok()) {
    fprintf(stderr, "Error: %s\n", std::string(parsed.status().message()).c_str());
    fprintf(stderr, "Try 'criu --help' for more information.\n");
    return 1;
  }
  const Options& o = *parsed;
  if (o.show_help) {
    fputs(UsageText().c_str(), stdout);
    return 0;
  }
  if (o.show_version) {
    fputs(std::string(kVersion).c_str(), stdout);
    return 0;
  }
  log::SetVerbosity(o.verbosity);
  std::string log_path = ResolveLogPath(o);
  if (!log_path.empty() && log_path != "-") {
    if (auto s = log::ToFile(log_path); !s.ok()) {
      fprintf(stderr, "Error: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  log::Info("crpp criu 0.1 (image format of CRIU 4.x): command %s", CommandName(o.command));
  for (const std::string& f : o.config_files) log::Info("read configuration file %s", f);
  for (const std::string& w : o.warnings) log::Warn("%s", w);
  std::string_view name = CommandName(o.command);
  switch (o.command) {
    case Command::kCheck: {
      auto supported = Supported({"feature", "all", "extra", "experimental"});
      if (auto s = CheckSupported(o, supported); !s.ok()) return Fail(name, s);
      return Check(o);
    }
    case Command::kDump: {
      auto supported =
          Supported({"tree", "leave-running", "leave-stopped", "shell-job", "pidfile", "external",
                     "display-stats", "timeout", "file-locks", "ghost-limit", "link-remap"});
      if (auto s = CheckSupported(o, supported); !s.ok()) return Fail(name, s);
      return DumpCommand(o);
    }
    case Command::kRestore: {
      auto supported = Supported({"restore-detached", "pidfile", "shell-job", "display-stats",
                                  "inherit-fd", "file-locks"});
      if (auto s = CheckSupported(o, supported); !s.ok()) return Fail(name, s);
      return RestoreCommand(o);
    }
    case Command::kShow: {
      auto supported = Supported({});
      if (auto s = CheckSupported(o, supported); !s.ok()) return Fail(name, s);
      return Show(o);
    }
    case Command::kNone:
      fputs(UsageText().c_str(), stderr);
      return 1;
    default:
      return Fail(
          name, absl::UnimplementedError(absl::StrFormat("command %s is not supported yet", name)));
  }
}

}  // namespace
}  // namespace crpp

int main(int argc, char** argv) { return crpp::Main(argc, argv); }
