// Restore side of the Memory plugin: runs inside the task being restored.
//
// Every private VMA is premapped inside one "keep" area (at an address that
// is free both in the target's layout and in ours) and filled with preadv
// from the pages image; the restorer blob later moves each one to its final
// address with mremap, which costs no copy.
//
// Copy-on-write sharing: a VMA whose pages the dump saw mapped more than once
// (kPeShared runs) is premapped and filled in RestoreBeforeChildren, before
// the task forks its children, and only these VMAs of the keep area are
// inherited by them (the rest is MADV_DONTFORK until the fork is over). A
// child whose own VMA matches one of them moves the inherited mapping into
// its keep area and writes only the pages that differ (memory_fill.h), so the
// others stay one page shared with the parent, as before the dump. Everything
// else is premapped and filled in Restore, after the children are forked, so
// that tasks sharing nothing fill their memory in parallel as before.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <span>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/restore/plan.h"
#include "fdinfo.pb.h"
#include "mm.pb.h"
#include "pagemap.pb.h"
#include "resources/mm/memory.h"
#include "resources/mm/memory_fill.h"
#include "resources/mm/shmem.h"
#include "resources/mm/work_area.h"

namespace crpp::resources {
namespace {

using fill::kPage;
using fill::Run;

uint64_t NrPages(const criu::pagemap_entry& pe) {
  return pe.has_nr_pages() ? pe.nr_pages() : pe.compat_nr_pages();
}

// The pagemap image as runs of pages, by address, with their place in the
// pages image.
absl::StatusOr<std::vector<Run>> ReadRuns(const std::string& path, uint32_t& pages_id) {
  auto r = images::ImageReader::Open(path, &images::Pagemap());
  if (!r.ok()) return r.status();
  criu::pagemap_head head;
  auto more = (*r)->Next(head);
  if (!more.ok()) return more.status();
  if (!*more) return absl::DataLossError(path + ": no pagemap head");
  pages_id = head.pages_id();
  std::vector<Run> runs;
  off_t off = 0;
  for (;;) {
    criu::pagemap_entry pe;
    more = (*r)->Next(pe);
    if (!more.ok()) return more.status();
    if (!*more) break;
    if ((pe.has_in_parent() && pe.in_parent()) || (pe.has_flags() && (pe.flags() & 3))) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s: pages at %#x are in a parent image or lazy: incremental and lazy restores are not "
          "supported yet",
          path, pe.vaddr()));
    }
    Run run{pe.vaddr(), NrPages(pe), off, pe.has_flags() && (pe.flags() & kPeShared)};
    off += static_cast<off_t>(run.pages * kPage);
    if (run.pages != 0) runs.push_back(run);
  }
  std::stable_sort(runs.begin(), runs.end(),
                   [](const Run& a, const Run& b) { return a.addr < b.addr; });
  return runs;
}

using PathMap = std::map<uint32_t, std::string>;

// A private VMA with a place in the keep area.
struct Premap {
  int index = 0;                      // in mm.vmas
  uint64_t at = 0;                    // where it is premapped
  size_t first_run = 0, nr_runs = 0;  // its pages: TaskMemory::runs
  // It holds pages the dump saw shared: premapped and filled before the
  // children are forked, and left to them to inherit.
  bool early = false;
};

// What the plugin knows of a task between its two hooks; a child reads its
// parent's (RestorePlan::parent) to find the premaps it inherited.
struct TaskMemory {
  std::string mm_path, pagemap_path;
  criu::mm_entry mm;
  uint32_t pages_id = 0;
  std::vector<Run> runs;        // by address, none across a VMA end
  std::vector<Premap> premaps;  // by address
  std::vector<int> premap_of;   // mm.vmas index -> premaps index, or -1
  uint64_t keep = 0, keep_size = 0, premap_total = 0;
  uint64_t pages = 0, shared_pages = 0;
  // files.img's paths, once read for an early private file mapping.
  std::shared_ptr<const PathMap> file_paths;

  std::span<const Run> RunsOf(const Premap& p) const {
    return {runs.data() + p.first_run, p.nr_runs};
  }
  uint64_t Len(const Premap& p) const { return mm.vmas(p.index).end() - mm.vmas(p.index).start(); }
};

bool IsPrivate(uint32_t st) {
  return !(st & (kVmaVdso | kVmaVvar | kVmaVsyscall)) && (st & (kVmaAnonPrivate | kVmaFilePrivate));
}

// Splits the runs at VMA ends and gives each premapped VMA its own: every
// private file VMA, and every private anonymous one with pages.
absl::Status AssignRuns(TaskMemory& tm, std::vector<Run> runs) {
  const criu::mm_entry& mm = tm.mm;
  std::vector<int> order(mm.vmas_size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return mm.vmas(a).start() < mm.vmas(b).start(); });
  auto stray = [&](uint64_t addr) {
    return absl::DataLossError(absl::StrFormat(
        "%s: pages at %#x belong to no private mapping of the task", tm.pagemap_path, addr));
  };
  tm.premap_of.assign(mm.vmas_size(), -1);
  size_t next = 0;  // runs[next] is the first run (or rest of one) not given yet
  for (int idx : order) {
    const criu::vma_entry& v = mm.vmas(idx);
    std::vector<Run> in;
    while (next < runs.size() && runs[next].addr < v.end()) {
      Run& r = runs[next];
      if (r.addr < v.start()) return stray(r.addr);
      Run head = r;
      head.pages = (std::min(r.end(), v.end()) - r.addr) / kPage;
      in.push_back(head);
      if (head.pages == r.pages) {
        ++next;
        continue;
      }
      // The rest of the run belongs to the next VMA (or to none).
      r.addr += head.pages * kPage;
      r.off += static_cast<off_t>(head.pages * kPage);
      r.pages -= head.pages;
    }
    uint32_t st = v.status();
    bool premapped = IsPrivate(st) && ((st & kVmaFilePrivate) || !in.empty());
    if (!premapped) {
      if (!in.empty()) return stray(in.front().addr);
      continue;
    }
    Premap p;
    p.index = idx;
    p.first_run = tm.runs.size();
    p.nr_runs = in.size();
    p.early = std::any_of(in.begin(), in.end(), [](const Run& r) { return r.shared; });
    tm.runs.insert(tm.runs.end(), in.begin(), in.end());
    tm.premap_of[idx] = static_cast<int>(tm.premaps.size());
    tm.premaps.push_back(p);
    tm.premap_total += v.end() - v.start();
  }
  if (next < runs.size()) return stray(runs[next].addr);
  return absl::OkStatus();
}

// The early premap of `parent` this task's VMA `v` can take over: the same
// range, flags and kind of memory (and file and offset).
const Premap* Inheritable(const TaskMemory& parent, const criu::vma_entry& v) {
  auto it = std::lower_bound(
      parent.premaps.begin(), parent.premaps.end(), v.start(),
      [&](const Premap& p, uint64_t s) { return parent.mm.vmas(p.index).start() < s; });
  if (it == parent.premaps.end() || !it->early) return nullptr;
  const criu::vma_entry& pv = parent.mm.vmas(it->index);
  constexpr uint32_t kKind = kVmaAnonPrivate | kVmaFilePrivate;
  if (pv.start() != v.start() || pv.end() != v.end() || pv.flags() != v.flags() ||
      (pv.status() & kKind) != (v.status() & kKind)) {
    return nullptr;
  }
  if ((v.status() & kVmaFilePrivate) && (pv.shmid() != v.shmid() || pv.pgoff() != v.pgoff())) {
    return nullptr;
  }
  return &*it;
}

// File paths by id: the fds plugin's once it ran (in Restore), else those
// of files.img (RestoreBeforeChildren runs before the fds plugin), read once
// for a whole line of tasks: a child takes its parent's copy.
class FilePaths {
 public:
  FilePaths(const RestoreContext& ctx, std::shared_ptr<const PathMap>& cache,
            const std::shared_ptr<const PathMap>* parent)
      : ctx_(ctx), cache_(cache), parent_(parent) {}
  absl::StatusOr<const std::string*> Find(uint32_t id) {
    if (!ctx_.file_paths.empty()) return ctx_.file_path(id);
    if (cache_ == nullptr && parent_ != nullptr) cache_ = *parent_;
    if (cache_ == nullptr) {
      auto files =
          images::ReadAll<criu::file_entry>(ctx_.images_dir + "/files.img", images::Files());
      if (!files.ok()) return files.status();
      auto paths = std::make_shared<PathMap>();
      for (const auto& f : *files) {
        if (f.has_reg()) (*paths)[f.id()] = f.reg().name();
      }
      cache_ = std::move(paths);
    }
    auto it = cache_->find(id);
    return it == cache_->end() ? nullptr : &it->second;
  }

 private:
  const RestoreContext& ctx_;
  std::shared_ptr<const PathMap>& cache_;
  const std::shared_ptr<const PathMap>* parent_;
};

// Premaps `p` as a fresh private mapping (of its file, if it has one).
absl::Status MapFresh(const TaskMemory& tm, const Premap& p, FilePaths& paths) {
  const criu::vma_entry& v = tm.mm.vmas(p.index);
  bool is_file = v.status() & kVmaFilePrivate;
  int fd = -1;
  if (is_file) {
    auto name = paths.Find(v.shmid());
    if (!name.ok()) return name.status();
    if (*name == nullptr) {
      return absl::DataLossError(
          absl::StrFormat("%s: mapping %#x-%#x refers to file id %d, which files.img lacks",
                          tm.mm_path, v.start(), v.end(), v.shmid()));
    }
    fd = open((*name)->c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return absl::NotFoundError(absl::StrFormat("mapping %#x-%#x: cannot open %s: %s", v.start(),
                                                 v.end(), **name, strerror(errno)));
    }
  }
  int flags = MAP_PRIVATE | MAP_FIXED | (is_file ? 0 : MAP_ANONYMOUS);
  if (v.flags() & MAP_GROWSDOWN) flags |= MAP_GROWSDOWN;
  void* m = mmap(reinterpret_cast<void*>(p.at), tm.Len(p), PROT_READ | PROT_WRITE, flags, fd,
                 is_file ? static_cast<off_t>(v.pgoff()) : 0);
  int err = errno;
  if (fd >= 0) close(fd);
  if (m == MAP_FAILED) {
    return absl::InternalError(
        absl::StrFormat("premapping %#x-%#x: %s", v.start(), v.end(), strerror(err)));
  }
  return absl::OkStatus();
}

void AddCopies(const TaskMemory& tm, const Premap& p, std::vector<fill::Job>& jobs) {
  uint64_t start = tm.mm.vmas(p.index).start();
  for (const Run& r : tm.RunsOf(p)) {
    jobs.push_back({reinterpret_cast<char*>(p.at + (r.addr - start)), r.off, r.pages * kPage});
  }
}

absl::Status Fill(const RestoreContext& ctx, TaskMemory& tm, std::vector<fill::Job> jobs) {
  if (jobs.empty()) return absl::OkStatus();
  std::string path = absl::StrFormat("%s/pages-%d.img", ctx.images_dir, tm.pages_id);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrFormat("%s: %s", path, strerror(errno)));
  absl::Status s = fill::RunJobs(fd, path, std::move(jobs), tm.shared_pages);
  close(fd);
  return s;
}

// Takes over the parent's premap `from` as `p`: moved into this task's keep
// area, then made to hold this task's pages.
absl::Status Inherit(const TaskMemory& parent, const Premap& from, const TaskMemory& tm,
                     const Premap& p, fill::Ranges& drop, std::vector<fill::Job>& jobs) {
  const criu::vma_entry& v = tm.mm.vmas(p.index);
  uint64_t len = tm.Len(p);
  void* m = mremap(reinterpret_cast<void*>(from.at), len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
                   reinterpret_cast<void*>(p.at));
  if (m == MAP_FAILED || reinterpret_cast<uint64_t>(m) != p.at) {
    return absl::InternalError(
        absl::StrFormat("moving the inherited premap of %#x-%#x from %#x: %s", v.start(), v.end(),
                        from.at, strerror(errno)));
  }
  fill::InheritedPlan plan =
      fill::PlanInherited(p.at, v.start(), tm.RunsOf(p), parent.RunsOf(from));
  for (const auto& [s, e] : plan.drop) {
    if (!drop.empty() && drop.back().second == s) {
      drop.back().second = e;  // one call for neighbours
    } else {
      drop.emplace_back(s, e);
    }
  }
  jobs.insert(jobs.end(), plan.jobs.begin(), plan.jobs.end());
  return absl::OkStatus();
}

// Lays out the keep area, sets up what the restorer needs there, and
// premaps and fills the early VMAs (inheriting the parent's where it can).
absl::StatusOr<std::shared_ptr<TaskMemory>> Prepare(RestoreContext& ctx) {
  auto tm = std::make_shared<TaskMemory>();
  tm->mm_path = absl::StrFormat("%s/mm-%d.img", ctx.images_dir, ctx.pid);
  tm->pagemap_path = absl::StrFormat("%s/pagemap-%d.img", ctx.images_dir, ctx.pid);
  auto all = images::ReadAll<criu::mm_entry>(tm->mm_path, images::Mm());
  if (!all.ok()) return all.status();
  if (all->size() != 1) return absl::DataLossError(tm->mm_path + ": expected one mm entry");
  tm->mm = std::move(all->front());
  const criu::mm_entry& mm = tm->mm;
  if (mm.vmas_size() > RESTORER_MAX_VMAS) {
    return absl::UnimplementedError(absl::StrFormat("%s: %d mappings, more than the %d supported",
                                                    tm->mm_path, mm.vmas_size(),
                                                    RESTORER_MAX_VMAS));
  }
  auto runs = ReadRuns(tm->pagemap_path, tm->pages_id);
  if (!runs.ok()) return runs.status();
  if (auto s = AssignRuns(*tm, *std::move(runs)); !s.ok()) return s;
  for (const Run& r : tm->runs) tm->pages += r.pages;

  RestorePlan& plan = *ctx.plan;
  auto area = MapWorkArea(tm->mm, tm->premap_total, plan);
  if (!area.ok()) return area.status();
  tm->keep = plan.keep_start;
  tm->keep_size = plan.keep_end - plan.keep_start;
  uint64_t cursor = *area;
  for (Premap& p : tm->premaps) {
    p.at = cursor;
    cursor += tm->Len(p);
  }
  const TaskMemory* parent =
      plan.parent ? static_cast<const TaskMemory*>(plan.parent->memory.get()) : nullptr;
  std::vector<bool> taken(parent ? parent->premaps.size() : 0);
  FilePaths paths(ctx, tm->file_paths, parent ? &parent->file_paths : nullptr);
  fill::Ranges drop;
  std::vector<fill::Job> jobs;
  for (const Premap& p : tm->premaps) {
    if (!p.early) continue;
    const Premap* from = parent ? Inheritable(*parent, mm.vmas(p.index)) : nullptr;
    if (from != nullptr) {
      taken[from - parent->premaps.data()] = true;
      if (auto s = Inherit(*parent, *from, *tm, p, drop, jobs); !s.ok()) return s;
    } else {
      if (auto s = MapFresh(*tm, p, paths); !s.ok()) return s;
      AddCopies(*tm, p, jobs);
    }
  }
  // What this task inherited and has no use for goes now: it is the
  // parent's memory, and nothing of it belongs here.
  for (size_t i = 0; i < taken.size(); ++i) {
    const Premap& p = parent->premaps[i];
    if (p.early && !taken[i]) munmap(reinterpret_cast<void*>(p.at), parent->Len(p));
  }
  for (const auto& [s, e] : drop) {
    if (madvise(reinterpret_cast<void*>(s), e - s, MADV_DONTNEED) != 0) {
      return absl::InternalError(
          absl::StrFormat("dropping inherited pages at %#x-%#x: %s", s, e, strerror(errno)));
    }
  }
  // The children get the early premaps and nothing else of the keep area:
  // a fork copies the page tables of everything it passes on.
  if (madvise(reinterpret_cast<void*>(tm->keep), tm->keep_size, MADV_DONTFORK) != 0) {
    return absl::InternalError(
        absl::StrFormat("MADV_DONTFORK of the work area %#x: %s", tm->keep, strerror(errno)));
  }
  // Early premaps next to each other in the keep area go in one call.
  fill::Ranges inherited;
  for (const Premap& p : tm->premaps) {
    if (!p.early) continue;
    if (!inherited.empty() && inherited.back().second == p.at) {
      inherited.back().second += tm->Len(p);
    } else {
      inherited.emplace_back(p.at, p.at + tm->Len(p));
    }
  }
  for (const auto& [s, e] : inherited) {
    if (madvise(reinterpret_cast<void*>(s), e - s, MADV_DOFORK) != 0) {
      return absl::InternalError(
          absl::StrFormat("MADV_DOFORK at %#x-%#x: %s", s, e, strerror(errno)));
    }
  }
  if (auto s = Fill(ctx, *tm, std::move(jobs)); !s.ok()) return s;
  return tm;
}

}  // namespace

absl::Status Memory::RestoreShared(RestoreContext&) { return LearnSpecialAreas(); }

absl::Status Memory::RestoreBeforeChildren(RestoreContext& ctx) {
  // A zombie has no memory image and forks no children; a live task whose
  // image is missing hears about it from Restore.
  std::string mm_path = absl::StrFormat("%s/mm-%d.img", ctx.images_dir, ctx.pid);
  if (ctx.plan == nullptr || access(mm_path.c_str(), F_OK) != 0) return absl::OkStatus();
  auto tm = Prepare(ctx);
  if (!tm.ok()) return tm.status();
  ctx.plan->memory = *std::move(tm);
  return absl::OkStatus();
}

absl::Status Memory::Restore(RestoreContext& ctx) {
  RestorePlan& plan = *ctx.plan;
  if (plan.memory == nullptr) {
    auto tm = Prepare(ctx);
    if (!tm.ok()) return tm.status();
    plan.memory = *std::move(tm);
  }
  TaskMemory& tm = *static_cast<TaskMemory*>(plan.memory.get());
  const criu::mm_entry& mm = tm.mm;
  restorer_args* args = plan.args;
  // The children are forked: the premaps are the task's own memory again,
  // which its own forks must copy.
  if (madvise(reinterpret_cast<void*>(tm.keep), tm.keep_size, MADV_DOFORK) != 0) {
    return absl::InternalError(
        absl::StrFormat("MADV_DOFORK of the work area %#x: %s", tm.keep, strerror(errno)));
  }

  // Premap the rest and describe every VMA.
  FilePaths paths(ctx, tm.file_paths, nullptr);
  std::vector<fill::Job> jobs;
  std::vector<const criu::vma_entry*> vdso, vvars;  // image order
  for (int i = 0; i < mm.vmas_size(); ++i) {
    const auto& v = mm.vmas(i);
    uint32_t st = v.status();
    if (st & kVmaVsyscall) continue;  // the kernel provides it
    if (st & kVmaVdso) {
      vdso.push_back(&v);
      continue;
    }
    if (st & kVmaVvar) {
      vvars.push_back(&v);
      continue;
    }
    restorer_vma& rv = args->vmas[args->nr_vmas++];
    rv.start = v.start();
    rv.end = v.end();
    rv.prot = v.prot();
    rv.flags = v.flags();
    rv.pgoff = v.pgoff();
    rv.madv = v.has_madv() ? v.madv() : 0;
    rv.fd = -1;
    if (int pi = tm.premap_of[i]; pi >= 0) {
      const Premap& p = tm.premaps[pi];
      if (!p.early) {
        if (auto s = MapFresh(tm, p, paths); !s.ok()) return s;
        AddCopies(tm, p, jobs);
      }
      rv.source = RESTORER_VMA_PREMAPPED;
      rv.premap = p.at;
      continue;
    }
    if (st & (kVmaAnonShared | kVmaMemfd)) {
      // Shared memory the shmem plugin made in the root: mapped from an fd
      // of it, shared with every task that maps it.
      auto it = ctx.shared_memory.find(SharedMemoryKey(st & kVmaMemfd, v.shmid()));
      if (it == ctx.shared_memory.end()) {
        return absl::DataLossError(absl::StrFormat(
            "%s: mapping %#x-%#x refers to shared memory %d, which was not restored", tm.mm_path,
            v.start(), v.end(), v.shmid()));
      }
      int fd = fcntl(it->second, F_DUPFD_CLOEXEC, 0);
      if (fd < 0) return absl::InternalError(absl::StrFormat("dup: %s", strerror(errno)));
      rv.source = RESTORER_VMA_FILE;
      rv.fd = fd;
      rv.flags = (v.flags() & ~MAP_ANONYMOUS) | MAP_SHARED;
      continue;
    }
    if (st & (kVmaFilePrivate | kVmaFileShared)) {
      const std::string* name = ctx.file_path(v.shmid());
      if (name == nullptr) {
        return absl::DataLossError(
            absl::StrFormat("%s: mapping %#x-%#x refers to file id %d, which files.img lacks",
                            tm.mm_path, v.start(), v.end(), v.shmid()));
      }
      bool writable_shared = (st & kVmaFileShared) && (v.prot() & PROT_WRITE);
      int fd = open(name->c_str(), writable_shared ? O_RDWR : O_RDONLY);
      if (fd < 0) {
        return absl::NotFoundError(absl::StrFormat("mapping %#x-%#x: cannot open %s: %s", v.start(),
                                                   v.end(), *name, strerror(errno)));
      }
      rv.source = RESTORER_VMA_FILE;
      rv.fd = fd;
      continue;
    }
    rv.source = RESTORER_VMA_ANON_EMPTY;
  }
  if (auto s = Fill(ctx, tm, std::move(jobs)); !s.ok()) return s;
  plan.pages_restored = tm.pages;

  if (auto s = PlanSpecialAreas(plan, vdso, vvars); !s.ok()) return s;
  if (auto s = PlanMmFields(ctx, mm, tm.mm_path, args->mm); !s.ok()) return s;
  log::Info(
      "memory: %d VMAs, %d premapped bytes, %d pages restored (%d of them shared with the "
      "parent), work area %#x-%#x",
      args->nr_vmas, tm.premap_total, tm.pages, tm.shared_pages, plan.keep_start, plan.keep_end);
  return absl::OkStatus();
}

}  // namespace crpp::resources
