// demo: checkpoint and restore a running program with the crpp library.
//
//   bazel run //tools:demo [-- --keep]
//
// Starts demo_counter (a counter that prints a line every 100 ms and checks
// a checksum of its memory each time), lets it run for a second, checkpoints
// it with crpp::Dump (which kills it), restores it with crpp::Restore, and
// shows from the counter's own log that it goes on with the same pid, the
// same memory and the next count. Then it stops the counter and removes its
// directory (--keep leaves the directory). Exits 1 with the reason when a
// step fails; every process it started is killed either way.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "core/dump/dump.h"
#include "core/log.h"
#include "core/restore/restore.h"
#include "tools/common/files.h"
#include "tools/common/process.h"

namespace crpp::tools {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kRunMs = 1000;     // how long the counter runs before the dump
constexpr int kMinNewLines = 5;  // lines to see after the restore
constexpr int kStartTimeoutMs = 5000;
constexpr int kLinesTimeoutMs = 3000;
constexpr int kExitTimeoutMs = 3000;
constexpr int kPollMs = 10;
constexpr int kCallTimeoutS = 5;  // a library call that takes longer is stuck

// Prints one step of the narrative (at once: the restore forks this process).
template <typename... Args>
void Say(const absl::FormatSpec<Args...>& format, const Args&... args) {
  absl::PrintF(format, args...);
  fflush(stdout);
}

// One "count=N pid=P checksum=C[ MISMATCH ...]" line of the counter's log.
struct CountLine {
  uint64_t count = 0;
  pid_t pid = 0;
  std::string checksum;
  bool mismatch = false;
  std::string text;
};

std::vector<CountLine> ReadCounts(const std::string& log) {
  std::vector<CountLine> out;
  for (absl::string_view line : absl::StrSplit(ReadFile(log), '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(line, "count=")) continue;
    CountLine c;
    c.text = std::string(line);
    c.mismatch = absl::StrContains(line, "MISMATCH");
    for (absl::string_view field : absl::StrSplit(line, ' ')) {
      if (absl::ConsumePrefix(&field, "count=")) (void)absl::SimpleAtoi(field, &c.count);
      if (absl::ConsumePrefix(&field, "pid=")) (void)absl::SimpleAtoi(field, &c.pid);
      if (absl::ConsumePrefix(&field, "checksum=")) c.checksum = std::string(field);
    }
    out.push_back(std::move(c));
  }
  return out;
}

double Ms(double seconds) { return seconds * 1e3; }

class Demo {
 public:
  explicit Demo(const std::string& dir)
      : dir_(dir),
        log_(dir + "/counter.log"),
        err_(dir + "/counter.err"),
        images_(dir + "/images") {}

  absl::Status Run() {
    std::filesystem::create_directories(images_);
    Say("crpp demo: checkpoint a running counter and bring it back (work dir %s)\n", dir_);
    for (auto step : {&Demo::Start, &Demo::Checkpoint, &Demo::WaitGone, &Demo::Restore,
                      &Demo::CheckResumed, &Demo::Stop}) {
      if (absl::Status s = (this->*step)(); !s.ok()) return s;
    }
    Say("\nDone: dump %.1f ms (frozen %.1f ms, %.1f MiB of pages written), restore %.1f ms.\n",
        Ms(dump_s_), stats_.frozen_us / 1e3, stats_.pages_written * 4096.0 / (1 << 20),
        Ms(restore_s_));
    return absl::OkStatus();
  }

  // Tails of every log, for a failure.
  std::string Diagnostics() const {
    std::string out;
    for (const std::string& path : {log_, err_, images_ + "/dump.log", images_ + "/restore.log"}) {
      std::string tail = TailLines(path, 15, "    ");
      if (!tail.empty()) absl::StrAppend(&out, "  --- ", path, ":\n", tail);
    }
    return out;
  }

 private:
  absl::Status Start() {
    absl::StatusOr<std::string> counter = FindRunfile("tools/demo/demo_counter");
    if (!counter.ok()) return counter.status();
    const Clock::time_point started = Clock::now();
    if (absl::Status s = Spawn({*counter}, log_, err_, child_); !s.ok()) return s;
    pid_ = child_.pid();
    Say("[1] started demo_counter as pid %d: own session, stdin /dev/null, output to %s\n", pid_,
        log_);
    // Its first line holds the checksum of its memory.
    for (int waited = 0; !absl::StrContains(ReadFile(log_), "started"); waited += kPollMs) {
      if (ProcState(pid_) == 'Z' || waited >= kStartTimeoutMs) {
        return absl::DeadlineExceededError(
            absl::StrFormat("demo_counter (pid %d) did not start within %d ms", pid_, waited));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
    }
    std::this_thread::sleep_until(started + std::chrono::milliseconds(kRunMs));
    std::vector<CountLine> lines = ReadCounts(log_);
    if (lines.size() < 3) {
      return absl::InternalError(
          absl::StrFormat("demo_counter wrote %d lines in %d ms, expected about %d", lines.size(),
                          kRunMs, kRunMs / 100));
    }
    checksum_ = lines.back().checksum;
    Say("[2] after %.1f s it has counted to %d: \"%s\"\n", SecondsSince(started),
        lines.back().count, lines.back().text);
    return absl::OkStatus();
  }

  absl::Status Checkpoint() {
    log::SetVerbosity(4);
    if (absl::Status s = log::ToFile(images_ + "/dump.log"); !s.ok()) return s;
    DumpRequest request;
    request.pid = pid_;
    request.images_dir = images_;
    const Clock::time_point t0 = Clock::now();
    absl::StatusOr<DumpStats> stats;
    {
      Watchdog watchdog(kCallTimeoutS, absl::StrCat("demo: crpp::Dump of pid ", pid_,
                                                    " (log: ", images_, "/dump.log)"));
      stats = Dump(request);
    }
    dump_s_ = SecondsSince(t0);
    if (!stats.ok()) {
      return absl::Status(stats.status().code(),
                          absl::StrCat("crpp::Dump: ", stats.status().message()));
    }
    stats_ = *stats;
    int64_t bytes = 0;
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(images_)) {
      if (e.path().extension() == ".log") continue;
      bytes += FileSize(e.path().string());
      ++files;
    }
    Say("[3] crpp::Dump took %.1f ms: frozen %.1f ms (%.1f ms of it on memory), %d pages "
        "written;\n    %d image files, %.1f MiB, in %s\n",
        Ms(dump_s_), stats_.frozen_us / 1e3, (stats_.memdump_us + stats_.memwrite_us) / 1e3,
        stats_.pages_written, files, bytes / double(1 << 20), images_);
    return absl::OkStatus();
  }

  absl::Status WaitGone() {
    absl::StatusOr<std::string> how = WaitDumpedChildGone(pid_, kExitTimeoutMs);
    if (!how.ok()) return how.status();
    child_.Reaped();
    std::vector<CountLine> lines = ReadCounts(log_);
    if (lines.empty()) return absl::InternalError("the counter's log has no count");
    lines_before_ = lines.size();
    last_count_ = lines.back().count;
    Say("[4] the dump killed pid %d and it is gone; %s.\n    Its last line: \"%s\"\n", pid_, *how,
        lines.back().text);
    return absl::OkStatus();
  }

  absl::Status Restore() {
    if (absl::Status s = log::ToFile(images_ + "/restore.log"); !s.ok()) return s;
    RestoreRequest request;
    request.images_dir = images_;
    const Clock::time_point t0 = Clock::now();
    absl::StatusOr<RestoreResult> result;
    {
      Watchdog watchdog(kCallTimeoutS,
                        absl::StrCat("demo: crpp::Restore (log: ", images_, "/restore.log)"));
      result = crpp::Restore(request);
    }
    restore_s_ = SecondsSince(t0);
    if (!result.ok()) {
      return absl::Status(result.status().code(),
                          absl::StrCat("crpp::Restore: ", result.status().message()));
    }
    // The restored task is our child: from now on, ours to reap.
    child_.Reset(result->pid);
    if (result->pid != pid_) {
      return absl::InternalError(
          absl::StrFormat("restored as pid %d, but the counter was pid %d", result->pid, pid_));
    }
    if (ParentOf(pid_) != getpid()) {
      return absl::InternalError(absl::StrFormat(
          "the restored pid %d is not our child (its parent is %d)", pid_, ParentOf(pid_)));
    }
    Say("[5] crpp::Restore took %.1f ms: pid %d runs again, as our child\n", Ms(restore_s_), pid_);
    return absl::OkStatus();
  }

  absl::Status CheckResumed() {
    std::vector<CountLine> lines;
    for (int waited = 0;; waited += kPollMs) {
      lines = ReadCounts(log_);
      if (lines.size() >= lines_before_ + kMinNewLines) break;
      if (ProcState(pid_) == 'Z' || waited >= kLinesTimeoutMs) {
        return absl::InternalError(absl::StrFormat(
            "the restored counter wrote %d new lines in %d ms (state '%c'), expected %d",
            lines.size() - lines_before_, waited, ProcState(pid_), kMinNewLines));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
    }
    Say("[6] since then it wrote:\n");
    uint64_t want = last_count_ + 1;
    for (size_t i = lines_before_; i < lines.size(); ++i, ++want) {
      const CountLine& c = lines[i];
      Say("      %s\n", c.text);
      if (c.mismatch || c.checksum != checksum_) {
        return absl::DataLossError(absl::StrFormat(
            "the restored counter's memory changed: checksum %s, before the dump %s", c.checksum,
            checksum_));
      }
      if (c.pid != pid_) {
        return absl::InternalError(absl::StrFormat("the line says pid %d, not %d", c.pid, pid_));
      }
      if (c.count != want) {
        return absl::InternalError(absl::StrFormat(
            "count=%d after count=%d: the counter did not go on where it was", c.count, want - 1));
      }
    }
    Say("    it went on from count=%d: no count lost or repeated, same pid, same checksum\n",
        last_count_);
    return absl::OkStatus();
  }

  absl::Status Stop() {
    if (kill(pid_, SIGTERM) != 0) {
      return absl::InternalError(absl::StrFormat("kill(%d, SIGTERM) failed", pid_));
    }
    absl::StatusOr<int> status = WaitExit(pid_, kExitTimeoutMs);
    if (!status.ok()) return status.status();
    child_.Reaped();
    const std::string last = TailLines(log_, 1, "");
    if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0 ||
        !absl::StartsWith(last, "stopped at count=")) {
      return absl::InternalError(
          absl::StrFormat("after SIGTERM the counter ended with %s, its last line: %s",
                          DescribeWaitStatus(*status), last));
    }
    Say("[7] SIGTERM reached the handler it had before the dump: \"%s\", %s; reaped\n",
        absl::StripTrailingAsciiWhitespace(last), DescribeWaitStatus(*status));
    return absl::OkStatus();
  }

  const std::string dir_, log_, err_, images_;
  ChildGuard child_;
  pid_t pid_ = 0;
  std::string checksum_;
  size_t lines_before_ = 0;
  uint64_t last_count_ = 0;
  DumpStats stats_;
  double dump_s_ = 0, restore_s_ = 0;
};

int Main(int argc, char** argv) {
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--keep") {
      keep = true;
    } else {
      fprintf(stderr,
              "usage: demo [--keep]\n"
              "  Checkpoints and restores a running counter with the crpp library.\n"
              "  --keep  leave the work directory (logs, images) in place\n");
      return arg == "--help" || arg == "-h" ? 0 : 2;
    }
  }
  KillGuardedOnSignals();
  const char* base = getenv("TEST_TMPDIR");
  if (base == nullptr) base = getenv("TMPDIR");
  absl::StatusOr<TempDir> dir = TempDir::Create(base != nullptr ? base : "/tmp", "crpp-demo");
  if (!dir.ok()) {
    fprintf(stderr, "demo: FAILED: %s\n", std::string(dir.status().message()).c_str());
    return 1;
  }
  const std::string path = dir->path();
  absl::Status status;
  {
    TempDir work = *std::move(dir);
    if (keep) work.Keep();
    Demo demo(path);
    status = demo.Run();
    log::ToStderr();
    if (!status.ok()) {
      fprintf(stderr, "\ndemo: FAILED: %s\n%s", std::string(status.message()).c_str(),
              demo.Diagnostics().c_str());
    }
  }  // kills and reaps the counter if a step failed, removes the work dir
  printf(keep ? "Kept %s\n" : "Removed %s\n", path.c_str());
  return status.ok() ? 0 : 1;
}

}  // namespace
}  // namespace crpp::tools

int main(int argc, char** argv) { return crpp::tools::Main(argc, argv); }
