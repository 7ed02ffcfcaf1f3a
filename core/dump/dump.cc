#include "core/dump/dump.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string_view>

#include "absl/strings/str_format.h"
#include "core/engine.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "core/ptrace/task.h"
#include "resources/default_resources.h"
#include "stats.pb.h"

namespace crpp {
namespace {

uint64_t Micros(std::chrono::steady_clock::time_point from) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - from)
          .count());
}

// A plugin that fails on purpose (DumpRequest::fail_after), for tests.
absl::Status InjectedFailure(const std::string& after) {
  return absl::AbortedError("dump failed on purpose after " + after + " (fault injection)");
}

}  // namespace

absl::Status WriteDumpStats(const std::string& images_dir, const DumpStats& s) {
  criu::stats_entry e;
  auto* d = e.mutable_dump();
  d->set_freezing_time(static_cast<uint32_t>(s.freezing_us));
  d->set_frozen_time(static_cast<uint32_t>(s.frozen_us));
  d->set_memdump_time(static_cast<uint32_t>(s.memdump_us));
  d->set_memwrite_time(static_cast<uint32_t>(s.memwrite_us));
  d->set_pages_scanned(s.pages_scanned);
  d->set_pages_skipped_parent(0);
  d->set_pages_written(s.pages_written);
  d->set_pages_lazy(0);
  auto w = images::TypedImageWriter<criu::stats_entry>::Create(images_dir + "/stats-dump",
                                                               images::Stats());
  if (!w.ok()) return w.status();
  if (auto st = w->Write(e); !st.ok()) return st;
  return w->Close();
}

absl::StatusOr<DumpStats> Dump(const DumpRequest& request) {
  DumpRequest req = request;
  if (char* real = realpath(request.images_dir.c_str(), nullptr)) {
    req.images_dir = real;
    free(real);
  }
  pid_t pid = req.pid;
  if (pid <= 0) return absl::InvalidArgumentError("dump needs the pid of a task (-t PID)");
  struct stat st;
  if (stat(req.images_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
      access(req.images_dir.c_str(), W_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("images directory %s does not exist or is not writable", req.images_dir));
  }
  if (pid == getpid()) return absl::InvalidArgumentError("cannot dump the dumping process itself");
  auto stat_info = proc::ReadStat(pid);
  if (!stat_info.ok()) {
    return absl::NotFoundError(
        absl::StrFormat("pid %d: no such process (%s)", pid, stat_info.status().message()));
  }
  auto status_info = proc::ReadStatus(pid);
  if (!status_info.ok()) return status_info.status();
  auto maps = proc::ReadMaps(pid);
  if (!maps.ok()) return maps.status();

  DumpStats stats;
  FileTable files;
  DumpContext ctx;
  ctx.root_pid = pid;
  ctx.images_dir = req.images_dir;
  ctx.shell_job = req.shell_job;
  ctx.stat = &*stat_info;
  ctx.status = &*status_info;
  ctx.maps = &*maps;
  ctx.files = &files;
  ctx.stats = &stats;

  using Plugins = DefaultResources;
  Engine<Plugins> engine;
  if (!req.fail_after.empty()) {
    const auto names = Plugins::names();
    if (std::find(names.begin(), names.end(), req.fail_after) == names.end()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("fail_after: no plugin is called \"%s\"", req.fail_after));
    }
  }
  // Everything that can be refused from /proc is refused before the target
  // is stopped.
  if (auto s = engine.Precheck(ctx); !s.ok()) return s;

  auto t0 = std::chrono::steady_clock::now();
  auto task = ptrace::Task::Seize(pid);
  if (!task.ok()) return task.status();
  stats.freezing_us = Micros(t0);
  auto frozen_at = std::chrono::steady_clock::now();
  log::Info("dump: pid %d frozen in %d us", pid, stats.freezing_us);
  // /proc may have changed between the precheck and the freeze.
  auto fresh_stat = proc::ReadStat(pid);
  auto fresh_status = proc::ReadStatus(pid);
  auto fresh_maps = proc::ReadMaps(pid);
  if (!fresh_stat.ok() || !fresh_status.ok() || !fresh_maps.ok()) {
    (void)(*task)->Release(ptrace::Leave::kRunning);
    return absl::AbortedError(absl::StrFormat("pid %d vanished while being frozen", pid));
  }
  ctx.stat = &*fresh_stat;
  ctx.status = &*fresh_status;
  ctx.maps = &*fresh_maps;
  ctx.task = task->get();

  // Fault injection stops the dump right after the named plugin, so the
  // later ones never run (as when that plugin's successor fails).
  auto after_each = [&req](std::string_view plugin) {
    return plugin == req.fail_after ? InjectedFailure(req.fail_after) : absl::OkStatus();
  };
  absl::Status s = engine.Precheck(ctx);
  if (s.ok()) s = engine.Dump(ctx, after_each);
  if (!s.ok()) {
    // Nothing lost: put the task back exactly as it was, running.
    absl::Status r = (*task)->Release(ptrace::Leave::kRunning);
    if (!r.ok()) log::Error("dump: while releasing pid %d: %s", pid, r.ToString());
    return s;
  }
  ptrace::Leave leave = req.leave_running   ? ptrace::Leave::kRunning
                        : req.leave_stopped ? ptrace::Leave::kStopped
                                            : ptrace::Leave::kKilled;
  stats.frozen_us = Micros(frozen_at);
  if (auto ws = WriteDumpStats(req.images_dir, stats); !ws.ok()) {
    (void)(*task)->Release(ptrace::Leave::kRunning);
    return ws;
  }
  if (auto r = (*task)->Release(leave); !r.ok()) return r;
  log::Info("dump: pid %d done (%s); frozen for %d us, %d pages written", pid,
            leave == ptrace::Leave::kKilled    ? "killed"
            : leave == ptrace::Leave::kRunning ? "left running"
                                               : "left stopped",
            stats.frozen_us, stats.pages_written);
  return stats;
}

}  // namespace crpp
