#include "core/dump/dump.h"

#include <linux/kcmp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string_view>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/engine.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/parallel.h"
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

namespace {

// One process of the tree as the dump driver holds it: seized (but for a
// zombie), with what /proc said about it.
struct Held {
  pid_t pid = 0, ppid = 0;
  std::unique_ptr<ptrace::Task> task;                  // null for a zombie
  std::vector<std::unique_ptr<ptrace::Task>> threads;  // the others, by tid
  proc::Stat stat;
  proc::Status status;
  std::vector<proc::Vma> maps;
  // Of `threads`, in their order (read once frozen).
  std::vector<proc::Stat> thread_stats;
  std::vector<proc::Status> thread_statuses;
};

// `frozen`: the tree is stopped, and what is read is what gets dumped (the
// VMA flags too).
absl::Status ReadProc(Held& h, bool frozen) {
  auto st = proc::ReadStat(h.pid);
  if (!st.ok()) return st.status();
  h.stat = *st;
  if (h.stat.state == 'Z') return absl::OkStatus();  // nothing else is left of it
  auto status = proc::ReadStatus(h.pid);
  if (!status.ok()) return status.status();
  auto maps = proc::ReadMaps(h.pid, /*with_flags=*/frozen);
  if (!maps.ok()) return maps.status();
  h.status = *status;
  h.maps = std::move(*maps);
  // The threads' own, for the task plugin (a frozen tree's threads are
  // read here, on all CPUs, not one after the other by the tracer).
  h.thread_stats.clear();
  h.thread_statuses.clear();
  if (!frozen) return absl::OkStatus();
  for (const auto& t : h.threads) {
    auto ts = proc::ReadStat(t->tid());
    if (!ts.ok()) return ts.status();
    auto tst = proc::ReadStatus(t->tid());
    if (!tst.ok()) return tst.status();
    h.thread_stats.push_back(*std::move(ts));
    h.thread_statuses.push_back(*std::move(tst));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<pid_t>> Children(pid_t pid) {
  auto c = proc::ListChildren(pid);
  if (!c.ok()) return c.status();
  std::sort(c->begin(), c->end());
  return c;
}

// The tree below `root` as /proc shows it now, without stopping anything
// (for the checks that refuse a dump before the target is touched). Each
// generation is read at once, its processes spread over the CPUs.
absl::StatusOr<std::vector<Held>> LookAtTree(pid_t root) {
  std::vector<Held> tree(1);
  tree[0].pid = root;
  for (size_t first = 0; first < tree.size();) {
    const size_t end = tree.size();
    std::vector<absl::Status> read(end - first);
    std::vector<std::vector<pid_t>> kids(end - first);
    ParallelFor(end - first, [&](size_t k) {
      Held& h = tree[first + k];
      read[k] = ReadProc(h, /*frozen=*/false);
      if (!read[k].ok() || h.stat.state == 'Z') return;
      auto c = Children(h.pid);
      if (c.ok()) kids[k] = *std::move(c);
      read[k] = c.status();
    });
    for (size_t k = 0; k < end - first; ++k) {
      if (!read[k].ok()) return read[k];
      for (pid_t kid : kids[k]) {
        Held h;
        h.pid = kid;
        h.ppid = tree[first + k].pid;
        tree.push_back(std::move(h));
      }
    }
    first = end;
  }
  return tree;
}

// Seizes every thread of process `h.pid` but the main one (seized already).
// A thread not seized yet can still create threads: the list is read again
// until it has nothing new.
absl::Status SeizeThreads(Held& h) {
  std::set<pid_t> known{h.pid};
  for (bool grew = true; grew;) {
    grew = false;
    auto tids = proc::ListThreads(h.pid);
    if (!tids.ok()) return tids.status();
    std::vector<pid_t> fresh;
    for (pid_t tid : *tids) {
      if (known.insert(tid).second) fresh.push_back(tid);
    }
    if (fresh.empty()) break;
    // Those that ended meanwhile are left out.
    auto seized = ptrace::Task::SeizeMany(fresh);
    if (!seized.ok()) return seized.status();
    for (auto& t : *seized) h.threads.push_back(std::move(t));
    grew = true;
  }
  std::sort(h.threads.begin(), h.threads.end(),
            [](const auto& a, const auto& b) { return a->tid() < b->tid(); });
  return absl::OkStatus();
}

// Seizes every process of the tree, parents before children. A task stopped
// by us cannot fork any more, and the children lists are read again once all
// are stopped, so a child forked while we went is caught too.
absl::StatusOr<std::vector<Held>> FreezeTree(pid_t root) {
  std::vector<Held> tree;
  std::set<pid_t> known;
  auto add = [&](pid_t pid, pid_t ppid) -> absl::Status {
    Held h;
    h.pid = pid;
    h.ppid = ppid;
    auto st = proc::ReadStat(pid);
    if (!st.ok()) return ppid == 0 ? st.status() : absl::OkStatus();  // a child that exited
    if (st->state != 'Z') {
      auto t = ptrace::Task::Seize(pid);
      if (!t.ok()) {
        if (ppid != 0 && absl::IsNotFound(t.status())) return absl::OkStatus();
        return t.status();
      }
      h.task = std::move(*t);
      if (auto s = SeizeThreads(h); !s.ok()) return s;
    }
    known.insert(pid);
    tree.push_back(std::move(h));
    return absl::OkStatus();
  };
  if (auto s = add(root, 0); !s.ok()) return s;
  for (bool grew = true; grew;) {
    grew = false;
    for (size_t i = 0; i < tree.size(); ++i) {
      if (!tree[i].task) continue;  // zombies have no children
      auto kids = Children(tree[i].pid);
      if (!kids.ok()) return kids.status();
      for (pid_t k : *kids) {
        if (known.count(k)) continue;
        if (auto s = add(k, tree[i].pid); !s.ok()) return s;
        grew = true;
      }
    }
  }
  // Parents before children, as pstree.img lists them.
  std::vector<Held> ordered;
  std::map<pid_t, std::vector<size_t>> kids;
  for (size_t i = 1; i < tree.size(); ++i) kids[tree[i].ppid].push_back(i);
  ordered.push_back(std::move(tree[0]));
  for (size_t i = 0; i < ordered.size(); ++i) {
    std::vector<size_t> mine = kids[ordered[i].pid];
    std::sort(mine.begin(), mine.end(),
              [&](size_t a, size_t b) { return tree[a].pid < tree[b].pid; });
    for (size_t k : mine) ordered.push_back(std::move(tree[k]));
  }
  return ordered;
}

// The files_id of a task (TreeTask::files_id): its parent's when both live
// and share one fd table (kcmp), else its own. Parents come first in `tree`.
uint32_t FilesId(const std::vector<TreeTask>& tree, const std::map<pid_t, size_t>& index,
                 const TreeTask& t) {
  auto parent = index.find(t.ppid);
  if (t.zombie() || parent == index.end()) return t.id;
  const TreeTask& p = tree[parent->second];
  if (p.zombie() || syscall(SYS_kcmp, p.pid, t.pid, KCMP_FILES, 0, 0) != 0) return t.id;
  return p.files_id;
}

void FillTree(std::vector<Held>& held, DumpContext& ctx) {
  ctx.tree.clear();
  ctx.ForgetOpenFds();
  std::map<pid_t, size_t> index;
  for (size_t i = 0; i < held.size(); ++i) {
    TreeTask t;
    t.pid = held[i].pid;
    t.ppid = held[i].ppid;
    t.id = static_cast<uint32_t>(i + 1);
    t.task = held[i].task.get();
    for (const auto& th : held[i].threads) t.threads.push_back(th.get());
    if (held[i].thread_stats.size() == held[i].threads.size()) {
      t.thread_stats = &held[i].thread_stats;
      t.thread_statuses = &held[i].thread_statuses;
    }
    t.stat = &held[i].stat;
    t.status = &held[i].status;
    t.maps = &held[i].maps;
    t.files_id = FilesId(ctx.tree, index, t);
    index[t.pid] = i;
    ctx.tree.push_back(t);
  }
  if (!ctx.tree.empty()) ctx.Select(ctx.tree.front());
}

// Lets every task of the tree go as asked, children first. Returns the first
// error, after trying them all.
absl::Status ReleaseAll(std::vector<Held>& held, ptrace::Leave how) {
  absl::Status first;
  auto release = [&](std::unique_ptr<ptrace::Task>& t) {
    absl::Status s = t->Release(how);
    if (!s.ok()) {
      log::Error("dump: while releasing pid %d: %s", t->tid(), s.ToString());
      if (first.ok()) first = s;
    }
    t.reset();
  };
  if (how == ptrace::Leave::kKilled) {
    // All at once: the kernel tears the processes down side by side while
    // they are collected one by one below.
    for (const Held& h : held) {
      if (h.task) kill(h.pid, SIGKILL);
    }
  }
  for (auto it = held.rbegin(); it != held.rend(); ++it) {
    // Undone while every thread of the process is still stopped: unmapping a
    // scratch page patches the code at a thread's ip (where the others wait
    // too), and a thread let go already could run into it.
    if (how != ptrace::Leave::kKilled) {
      for (auto& th : it->threads) {
        if (absl::Status s = th->DropScratch(); !s.ok() && first.ok()) first = s;
      }
      if (it->task) {
        if (absl::Status s = it->task->DropScratch(); !s.ok() && first.ok()) first = s;
      }
    }
    // The other threads first: a killed main thread is reported (and
    // collected) only once they are gone.
    for (auto& th : it->threads) release(th);
    it->threads.clear();
    if (it->task) release(it->task);
  }
  return first;
}

}  // namespace

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
  if (auto probe = proc::ReadStat(pid); !probe.ok()) {
    return absl::NotFoundError(
        absl::StrFormat("pid %d: no such process (%s)", pid, probe.status().message()));
  }

  DumpStats stats;
  FileTable files;
  DumpContext ctx;
  ctx.root_pid = pid;
  ctx.images_dir = req.images_dir;
  ctx.shell_job = req.shell_job;
  ctx.external = req.external;
  ctx.file_locks = req.file_locks;
  ctx.link_remap = req.link_remap;
  ctx.ghost_limit = req.ghost_limit;
  ctx.files = &files;
  ctx.stats = &stats;

  const AnyEngine& engine = req.engine != nullptr ? *req.engine : DefaultEngine();
  if (!req.fail_after.empty()) {
    const auto names = engine.PluginNames();
    if (std::find(names.begin(), names.end(), req.fail_after) == names.end()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("fail_after: no plugin is called \"%s\"", req.fail_after));
    }
  }
  // Everything that can be refused from /proc is refused before the tree
  // is stopped.
  bool many_fds = false;
  {
    auto look = LookAtTree(pid);
    if (!look.ok()) return look.status();
    FillTree(*look, ctx);
    many_fds = ctx.ReadTreeFdsAhead() > DumpContext::kFdinfoScanUpTo;
    if (many_fds) ctx.ReadProcLocksAhead();
    if (auto s = engine.Precheck(ctx); !s.ok()) return s;
  }

  auto t0 = std::chrono::steady_clock::now();
  auto frozen = FreezeTree(pid);
  if (!frozen.ok()) return frozen.status();  // what was seized is released by ~Task
  std::vector<Held>& held = *frozen;
  stats.freezing_us = Micros(t0);
  auto frozen_at = std::chrono::steady_clock::now();
  if (many_fds) ctx.ReadProcLocksAhead();  // what the frozen tree holds, while the rest is read
  size_t threads = 0;
  for (const Held& h : held) threads += h.threads.size() + (h.task ? 1 : 0);
  log::Info("dump: %d tasks (%d threads) below pid %d frozen in %d us", held.size(), threads, pid,
            stats.freezing_us);
  // /proc may have changed between the precheck and the freeze.
  std::vector<absl::Status> reread(held.size());
  ParallelFor(held.size(), [&](size_t i) { reread[i] = ReadProc(held[i], /*frozen=*/true); });
  for (size_t i = 0; i < held.size(); ++i) {
    if (!reread[i].ok()) {
      (void)ReleaseAll(held, ptrace::Leave::kRunning);
      return absl::AbortedError(absl::StrFormat("pid %d vanished while being frozen (%s)",
                                                held[i].pid, reread[i].message()));
    }
  }
  FillTree(held, ctx);
  ctx.ReadTreeFdsAhead(/*with_info=*/true);

  // Fault injection stops the dump right after the named plugin, so the
  // later ones never run (as when that plugin's successor fails).
  auto after_each = [&req](std::string_view plugin) {
    return plugin == req.fail_after ? InjectedFailure(req.fail_after) : absl::OkStatus();
  };
  absl::Status s = engine.Precheck(ctx);
  if (s.ok()) s = engine.Dump(ctx, after_each);
  if (!s.ok()) {
    // Nothing lost: put every task back exactly as it was, running.
    (void)ReleaseAll(held, ptrace::Leave::kRunning);
    for (const std::string& path : ctx.remove_on_failure) unlink(path.c_str());
    return s;
  }
  ptrace::Leave leave = req.leave_running   ? ptrace::Leave::kRunning
                        : req.leave_stopped ? ptrace::Leave::kStopped
                                            : ptrace::Leave::kKilled;
  stats.frozen_us = Micros(frozen_at);
  if (auto ws = WriteDumpStats(req.images_dir, stats); !ws.ok()) {
    (void)ReleaseAll(held, ptrace::Leave::kRunning);
    for (const std::string& path : ctx.remove_on_failure) unlink(path.c_str());
    return ws;
  }
  if (auto r = ReleaseAll(held, leave); !r.ok()) return r;
  log::Info("dump: pid %d and %d more done (%s); frozen for %d us, %d pages written", pid,
            held.size() - 1,
            leave == ptrace::Leave::kKilled    ? "killed"
            : leave == ptrace::Leave::kRunning ? "left running"
                                               : "left stopped",
            stats.frozen_us, stats.pages_written);
  return stats;
}

}  // namespace crpp
