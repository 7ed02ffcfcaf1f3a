#include "tools/bench/bench_run.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/dump/dump.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "core/restore/restore.h"
#include "tools/common/files.h"
#include "tools/common/process.h"

namespace crpp::tools {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kReadyTimeoutMs = 120'000;  // filling a GiB takes about a second
constexpr int kVerdictTimeoutMs = 60'000;
constexpr int kExitTimeoutMs = 10'000;
constexpr int kPollMs = 2;
// A library call that takes longer is stuck: the benchmark gives up.
constexpr int kCallTimeoutS = 120;

// The first line of PATH that starts with one of PREFIXES, waiting for it up
// to TIMEOUT_MS while PID lives.
absl::StatusOr<std::string> WaitForLine(const std::string& path,
                                        const std::vector<std::string>& prefixes, pid_t pid,
                                        int timeout_ms) {
  for (int waited = 0;; waited += kPollMs) {
    const std::string text = ReadFile(path);
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      // Only complete lines: the last piece has no newline after it yet.
      if (line.data() + line.size() == text.data() + text.size()) break;
      for (const std::string& p : prefixes) {
        if (absl::StartsWith(line, p)) return std::string(line);
      }
    }
    const char state = ProcState(pid);
    if (state == 0 || state == 'Z' || waited >= timeout_ms) {
      return absl::DeadlineExceededError(absl::StrCat(
          "bench_target (pid ", pid, ", state '", std::string(1, state ? state : '-'),
          "') wrote no \"", prefixes.front(), "\" line to ", path, " within ", waited, " ms"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
  }
}

// PID and every process below it.
std::vector<pid_t> TreeOf(pid_t pid) {
  std::vector<pid_t> tree = {pid};
  for (size_t i = 0; i < tree.size(); ++i) {
    absl::StatusOr<std::vector<pid_t>> kids = proc::ListChildren(tree[i]);
    if (kids.ok()) tree.insert(tree.end(), kids->begin(), kids->end());
  }
  return tree;
}

// Waits until every process of a dumped (and killed) tree is gone, reaping
// the orphans that came to us (the benchmark is a child subreaper): their
// pids must be free before the restore, and the time the kernel takes to
// tear them down is not the restore's.
absl::Status WaitTreeGone(const std::vector<pid_t>& tree, int timeout_ms) {
  for (int waited = 0;; waited += kPollMs) {
    while (waitpid(-1, nullptr, WNOHANG | __WALL) > 0) {
    }
    size_t left = 0;
    for (pid_t p : tree) left += ProcState(p) != 0;
    if (left == 0) return absl::OkStatus();
    if (waited >= timeout_ms) {
      return absl::DeadlineExceededError(
          absl::StrCat(left, " processes of the dumped tree still exist after ", waited, " ms"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
  }
}

absl::Status Prefixed(const absl::Status& s, absl::string_view what) {
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

}  // namespace

std::string ImagesDir(const std::string& work_dir) { return work_dir + "/images"; }

absl::StatusOr<RunResult> RunOnce(const RunSpec& spec) {
  const std::string images = ImagesDir(spec.work_dir);
  const std::string out = spec.work_dir + "/target.out";
  const std::string err = spec.work_dir + "/target.err";
  std::error_code ec;
  std::filesystem::remove_all(images, ec);
  std::filesystem::remove(out, ec);
  std::filesystem::remove(err, ec);
  if (!std::filesystem::create_directories(images, ec)) {
    return absl::InternalError(absl::StrCat("cannot create ", images, ": ", ec.message()));
  }

  ChildGuard child;
  std::vector<std::string> argv = {spec.target};
  if (spec.args.empty()) {
    argv.push_back(absl::StrCat(spec.mib));
  } else {
    argv.insert(argv.end(), spec.args.begin(), spec.args.end());
  }
  if (absl::Status s = Spawn(argv, out, err, child); !s.ok()) {
    return s;
  }
  const pid_t pid = child.pid();
  absl::StatusOr<std::string> ready = WaitForLine(out, {"ready "}, pid, kReadyTimeoutMs);
  if (!ready.ok()) return ready.status();
  const std::string checksum = ready->substr(6);

  const std::vector<pid_t> tree = TreeOf(pid);
  RunResult result;
  log::SetVerbosity(4);  // with timestamps, for --profile
  if (absl::Status s = log::ToFile(images + "/dump.log"); !s.ok()) return s;
  DumpRequest dump;
  dump.pid = pid;
  dump.images_dir = images;
  log::Info("bench: dump begins");
  Clock::time_point t0 = Clock::now();
  absl::StatusOr<DumpStats> stats;
  {
    Watchdog watchdog(kCallTimeoutS, absl::StrCat("crpp::Dump of pid ", pid, " into ", images));
    stats = Dump(dump);
  }
  result.dump_s = SecondsSince(t0);
  log::Info("bench: dump returned");
  if (!stats.ok()) return Prefixed(stats.status(), "crpp::Dump");
  result.stats = *stats;
  absl::StatusOr<std::string> gone = WaitDumpedChildGone(pid, kExitTimeoutMs);
  if (!gone.ok()) return gone.status();
  child.Reaped();
  if (absl::Status s = WaitTreeGone(tree, kExitTimeoutMs); !s.ok()) return s;

  if (absl::Status s = log::ToFile(images + "/restore.log"); !s.ok()) return s;
  RestoreRequest restore;
  restore.images_dir = images;
  log::Info("bench: restore begins");
  t0 = Clock::now();
  absl::StatusOr<RestoreResult> restored;
  {
    Watchdog watchdog(kCallTimeoutS, absl::StrCat("crpp::Restore from ", images));
    restored = Restore(restore);
  }
  result.restore_s = SecondsSince(t0);
  log::Info("bench: restore returned");
  log::ToStderr();
  if (!restored.ok()) return Prefixed(restored.status(), "crpp::Restore");
  child.Reset(restored->pid);  // our child now
  if (restored->pid != pid) {
    return absl::InternalError(
        absl::StrCat("restored as pid ", restored->pid, ", but the target was pid ", pid));
  }

  if (kill(pid, SIGUSR1) != 0) {
    return absl::InternalError(absl::StrCat("kill(", pid, ", SIGUSR1) failed"));
  }
  absl::StatusOr<std::string> verdict = WaitForLine(out, {"OK ", "FAIL "}, pid, kVerdictTimeoutMs);
  if (!verdict.ok()) return verdict.status();
  absl::StatusOr<int> status = WaitExit(pid, kExitTimeoutMs);
  if (!status.ok()) return status.status();
  child.Reaped();
  if (*verdict != "OK " + checksum || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::DataLossError(absl::StrCat("the restored target says \"", *verdict,
                                            "\" (checksum before the dump: ", checksum,
                                            ") and ended with ", DescribeWaitStatus(*status)));
  }

  for (const auto& e : std::filesystem::directory_iterator(images, ec)) {
    if (e.path().extension() == ".log") continue;
    const int64_t size = FileSize(e.path().string());
    result.image_bytes += size;
    if (absl::StartsWith(e.path().filename().string(), "pages-")) result.pages_bytes += size;
  }
  return result;
}

std::string RunDiagnostics(const std::string& work_dir) {
  const std::string images = ImagesDir(work_dir);
  std::string out;
  for (const std::string& path : {work_dir + "/target.out", work_dir + "/target.err",
                                  images + "/dump.log", images + "/restore.log"}) {
    std::string tail = TailLines(path, 12, "    ");
    if (!tail.empty()) absl::StrAppend(&out, "  --- ", path, ":\n", tail);
  }
  return out;
}

}  // namespace crpp::tools
