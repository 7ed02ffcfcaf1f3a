// Restore side of the Memory plugin: runs inside the task being restored.
//
// Every private VMA is premapped inside one "keep" area (at an address that
// is free both in the target's layout and in ours) and filled with preadv
// from the pages image; the restorer blob later moves each one to its final
// address with mremap, which costs no copy.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "arch/x86_64/xsave.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "core/restore/plan.h"
#include "mm.pb.h"
#include "pagemap.pb.h"
#include "resources/mm/memory.h"
#include "resources/mm/shmem.h"

namespace crpp::resources {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kStackSize = 256 << 10;
// The restorer's stack in each other thread: the sigframe with the xsave
// image, and little else.
constexpr uint64_t kThreadStackSize = 64 << 10;
// Highest user address on x86-64 with 4-level paging.
constexpr uint64_t kTaskSize = 0x7ffffffff000ull;

uint64_t PageUp(uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); }

struct Layout {
  uint64_t args_off, xsave_off, stack_off, threads_off, thread_areas_off, blob_off, premap_off,
      size;
};

// Finds `size` bytes free in both the target layout and ours, and maps them.
absl::StatusOr<uint64_t> MapKeepArea(const criu::mm_entry& mm, uint64_t size) {
  std::vector<std::pair<uint64_t, uint64_t>> used;
  for (const auto& v : mm.vmas()) used.emplace_back(v.start(), v.end());
  std::sort(used.begin(), used.end());
  // Gaps of the target layout, largest first: the keep area goes where the
  // restored task has nothing and then disappears with the restorer.
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  uint64_t prev = 1ull << 20;
  for (const auto& [s, e] : used) {
    if (s > prev) gaps.emplace_back(prev, s);
    prev = std::max(prev, e);
  }
  if (prev < kTaskSize) gaps.emplace_back(prev, kTaskSize);
  std::sort(gaps.begin(), gaps.end(),
            [](const auto& a, const auto& b) { return a.second - a.first > b.second - b.first; });
  for (const auto& [gs, ge] : gaps) {
    if (ge - gs < size) continue;
    constexpr int kTries = 32;
    for (int i = 0; i < kTries; ++i) {
      uint64_t span = ge - gs - size;
      uint64_t at = (gs + span / kTries * i) & ~(kPage - 1);
      if (at < gs) continue;
      void* p = mmap(reinterpret_cast<void*>(at), size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
      if (p == MAP_FAILED) continue;
      if (reinterpret_cast<uint64_t>(p) == at) return at;
      munmap(p, size);  // an old kernel ignored NOREPLACE
    }
  }
  return absl::ResourceExhaustedError(absl::StrFormat(
      "no room for the restorer's %d-byte work area in the target's address space", size));
}

struct Area {
  uint64_t start, end, premap;  // premap == 0: not premapped
};

struct CopyJob {
  char* dst;
  off_t off;
  uint64_t len;
};

absl::Status Copy(int fd, const std::string& path, const CopyJob& j) {
  // Faulting fresh pages in one go is cheaper than one fault per page
  // inside pread (the cost of a restore is mostly these faults).
  constexpr int kMadvPopulateWrite = 23;
  (void)madvise(j.dst, j.len, kMadvPopulateWrite);
  uint64_t done = 0;
  while (done < j.len) {
    ssize_t got = pread(fd, j.dst + done, j.len - done, j.off + static_cast<off_t>(done));
    if (got <= 0) {
      return absl::DataLossError(
          absl::StrFormat("%s: at offset %d: %s", path, j.off + static_cast<off_t>(done),
                          got == 0 ? "truncated pages image" : strerror(errno)));
    }
    done += static_cast<uint64_t>(got);
  }
  return absl::OkStatus();
}

// Fills the premapped areas, on two threads when there is enough to share:
// filling fresh memory is bound by page faults, which scale with cores. The
// helper thread is joined before anything else happens in the task.
absl::Status RunCopies(int fd, const std::string& path, std::vector<CopyJob> jobs) {
  constexpr uint64_t kSplitAbove = 64ull << 20;
  uint64_t total = 0;
  for (const CopyJob& j : jobs) total += j.len;
  std::vector<CopyJob> second;
  if (total >= kSplitAbove) {
    uint64_t half = total / 2, acc = 0;
    std::vector<CopyJob> first;
    for (const CopyJob& j : jobs) {
      if (acc >= half) {
        second.push_back(j);
      } else if (acc + j.len <= half) {
        first.push_back(j);
      } else {
        uint64_t head = (half - acc) & ~(kPage - 1);
        first.push_back({j.dst, j.off, head});
        second.push_back({j.dst + head, j.off + static_cast<off_t>(head), j.len - head});
      }
      acc += j.len;
    }
    jobs = std::move(first);
  }
  absl::Status other;
  std::thread helper;
  if (!second.empty()) {
    helper = std::thread([&] {
      for (const CopyJob& j : second) {
        if (other = Copy(fd, path, j); !other.ok()) return;
      }
    });
  }
  absl::Status mine;
  for (const CopyJob& j : jobs) {
    if (mine = Copy(fd, path, j); !mine.ok()) break;
  }
  if (helper.joinable()) helper.join();
  return mine.ok() ? other : mine;
}

// The pagemap image, read once: where each run of dumped pages goes.
struct Pagemap {
  std::string path;
  uint32_t pages_id = 0;
  std::vector<criu::pagemap_entry> entries;
};

uint64_t NrPages(const criu::pagemap_entry& pe) {
  return pe.has_nr_pages() ? pe.nr_pages() : pe.compat_nr_pages();
}

absl::StatusOr<Pagemap> ReadPagemap(const std::string& dir, pid_t pid) {
  Pagemap pm;
  pm.path = absl::StrFormat("%s/pagemap-%d.img", dir, pid);
  auto r = images::ImageReader::Open(pm.path, &images::Pagemap());
  if (!r.ok()) return r.status();
  criu::pagemap_head head;
  auto more = (*r)->Next(head);
  if (!more.ok()) return more.status();
  if (!*more) return absl::DataLossError(pm.path + ": no pagemap head");
  pm.pages_id = head.pages_id();
  for (;;) {
    criu::pagemap_entry pe;
    more = (*r)->Next(pe);
    if (!more.ok()) return more.status();
    if (!*more) return pm;
    if ((pe.has_in_parent() && pe.in_parent()) || (pe.has_flags() && (pe.flags() & 3))) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s: pages at %#x are in a parent image or lazy: incremental and lazy restores are not "
          "supported yet",
          pm.path, pe.vaddr()));
    }
    pm.entries.push_back(std::move(pe));
  }
}

absl::Status FillPages(const std::string& dir, const Pagemap& pm, const std::vector<Area>& areas,
                       uint64_t& pages_restored) {
  std::string pages_path = absl::StrFormat("%s/pages-%d.img", dir, pm.pages_id);
  int fd = open(pages_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrFormat("%s: %s", pages_path, strerror(errno)));
  }
  off_t off = 0;
  absl::Status status;
  std::vector<CopyJob> jobs;
  for (const criu::pagemap_entry& pe : pm.entries) {
    uint64_t addr = pe.vaddr(), end = pe.vaddr() + NrPages(pe) * kPage;
    while (addr < end) {
      auto a = std::find_if(areas.begin(), areas.end(),
                            [&](const Area& x) { return addr >= x.start && addr < x.end; });
      if (a == areas.end() || a->premap == 0) {
        status = absl::DataLossError(absl::StrFormat(
            "%s: pages at %#x belong to no private mapping of the task", pm.path, addr));
        break;
      }
      uint64_t chunk = std::min(end, a->end) - addr;
      jobs.push_back({reinterpret_cast<char*>(a->premap + (addr - a->start)), off, chunk});
      off += static_cast<off_t>(chunk);
      addr += chunk;
      pages_restored += chunk / kPage;
    }
    if (!status.ok()) break;
  }
  if (status.ok()) status = RunCopies(fd, pages_path, jobs);
  close(fd);
  return status;
}

// The current task's vdso-related areas, by name.
struct SpecialAreas {
  uint64_t vdso = 0, vdso_size = 0, vvar = 0, vvar_size = 0, vclock = 0, vclock_size = 0;
};

absl::StatusOr<SpecialAreas> OwnSpecialAreas() {
  auto maps = proc::ReadMaps(getpid(), /*with_flags=*/false);
  if (!maps.ok()) return maps.status();
  SpecialAreas s;
  for (const auto& v : *maps) {
    if (v.path == "[vdso]") s.vdso = v.start, s.vdso_size = v.size();
    if (v.path == "[vvar]") s.vvar = v.start, s.vvar_size = v.size();
    if (v.path == "[vvar_vclock]") s.vclock = v.start, s.vclock_size = v.size();
  }
  return s;
}

}  // namespace

absl::Status Memory::Restore(RestoreContext& ctx) {
  std::string path = absl::StrFormat("%s/mm-%d.img", ctx.images_dir, ctx.pid);
  auto all = images::ReadAll<criu::mm_entry>(path, images::Mm());
  if (!all.ok()) return all.status();
  if (all->size() != 1) return absl::DataLossError(path + ": expected one mm entry");
  const criu::mm_entry& mm = all->front();
  RestorePlan& plan = *ctx.plan;

  // Which VMAs need their contents carried over.
  auto pm = ReadPagemap(ctx.images_dir, ctx.pid);
  if (!pm.ok()) return pm.status();
  auto has_pages = [&](uint64_t s, uint64_t e) {
    return std::any_of(pm->entries.begin(), pm->entries.end(), [&](const auto& pe) {
      return pe.vaddr() < e && pe.vaddr() + NrPages(pe) * kPage > s;
    });
  };

  uint64_t premap_total = 0;
  std::vector<bool> premapped(mm.vmas_size());
  for (int i = 0; i < mm.vmas_size(); ++i) {
    const auto& v = mm.vmas(i);
    uint32_t st = v.status();
    if (st & (kVmaVdso | kVmaVvar | kVmaVsyscall)) continue;
    bool private_file = st & kVmaFilePrivate;
    bool anon = st & kVmaAnonPrivate;
    if (private_file || (anon && has_pages(v.start(), v.end()))) {
      premapped[i] = true;
      premap_total += v.end() - v.start();
    }
  }

  auto xlayout = arch::ReadXsaveLayout();
  if (!xlayout.ok()) return xlayout.status();
  Layout l;
  l.args_off = 0;
  l.xsave_off = PageUp(sizeof(restorer_args));
  plan.xsave_capacity = PageUp(xlayout->enabled_size + 64);
  l.stack_off = l.xsave_off + plan.xsave_capacity;
  l.threads_off = l.stack_off + kStackSize;
  l.thread_areas_off = l.threads_off + PageUp(plan.nr_threads * sizeof(restorer_thread));
  const uint64_t thread_area = plan.xsave_capacity + kThreadStackSize;
  l.blob_off = l.thread_areas_off + plan.nr_threads * thread_area;
  l.premap_off = l.blob_off + PageUp(plan.blob_size);
  l.size = l.premap_off + premap_total;
  auto keep = MapKeepArea(mm, l.size);
  if (!keep.ok()) return keep.status();
  plan.keep_start = *keep;
  plan.keep_end = *keep + l.size;
  plan.blob_addr = *keep + l.blob_off;
  auto* args = new (reinterpret_cast<void*>(*keep + l.args_off)) restorer_args();
  plan.args = args;
  args->version = RESTORER_ARGS_VERSION;
  args->keep_start = plan.keep_start;
  args->keep_end = plan.keep_end;
  args->stack_top = (*keep + l.stack_off + kStackSize) & ~15ull;
  args->xsave = *keep + l.xsave_off;
  args->status_fd = -1;
  args->threads = *keep + l.threads_off;
  args->nr_threads = static_cast<uint32_t>(plan.nr_threads);
  auto* threads = reinterpret_cast<restorer_thread*>(args->threads);
  for (size_t i = 0; i < plan.nr_threads; ++i) {
    uint64_t area = *keep + l.thread_areas_off + i * thread_area;
    new (&threads[i]) restorer_thread();
    threads[i].xsave = area;
    threads[i].stack_top = (area + thread_area) & ~15ull;
  }
  for (auto& rl : args->mm.auxv) rl = 0;

  // Premap and describe every VMA.
  if (mm.vmas_size() > RESTORER_MAX_VMAS) {
    return absl::UnimplementedError(absl::StrFormat("%s: %d mappings, more than the %d supported",
                                                    path, mm.vmas_size(), RESTORER_MAX_VMAS));
  }
  std::vector<Area> areas;
  uint64_t cursor = *keep + l.premap_off;
  std::vector<std::pair<uint64_t, uint64_t>> vvars;  // image order
  uint64_t vdso_want = 0, vdso_size = 0;
  for (int i = 0; i < mm.vmas_size(); ++i) {
    const auto& v = mm.vmas(i);
    uint64_t len = v.end() - v.start();
    uint32_t st = v.status();
    if (st & kVmaVsyscall) continue;  // the kernel provides it
    if (st & kVmaVdso) {
      vdso_want = v.start(), vdso_size = len;
      continue;
    }
    if (st & kVmaVvar) {
      vvars.emplace_back(v.start(), len);
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
    bool is_file = st & (kVmaFilePrivate | kVmaFileShared);
    int fd = -1;
    if (st & (kVmaAnonShared | kVmaMemfd)) {
      // Shared memory the shmem plugin made in the root: mapped from an fd
      // of it, shared with every task that maps it.
      auto it = ctx.shared_memory.find(SharedMemoryKey(st & kVmaMemfd, v.shmid()));
      if (it == ctx.shared_memory.end()) {
        return absl::DataLossError(absl::StrFormat(
            "%s: mapping %#x-%#x refers to shared memory %d, which was not restored", path,
            v.start(), v.end(), v.shmid()));
      }
      fd = fcntl(it->second, F_DUPFD_CLOEXEC, 0);
      if (fd < 0) return absl::InternalError(absl::StrFormat("dup: %s", strerror(errno)));
      rv.source = RESTORER_VMA_FILE;
      rv.fd = fd;
      rv.flags = (v.flags() & ~MAP_ANONYMOUS) | MAP_SHARED;
      areas.push_back({v.start(), v.end(), 0});
      continue;
    }
    if (is_file) {
      const std::string* name = ctx.file_path(v.shmid());
      if (name == nullptr) {
        return absl::DataLossError(
            absl::StrFormat("%s: mapping %#x-%#x refers to file id %d, which files.img lacks", path,
                            v.start(), v.end(), v.shmid()));
      }
      bool writable_shared = (st & kVmaFileShared) && (v.prot() & PROT_WRITE);
      fd = open(name->c_str(), writable_shared ? O_RDWR : O_RDONLY);
      if (fd < 0) {
        return absl::NotFoundError(absl::StrFormat("mapping %#x-%#x: cannot open %s: %s", v.start(),
                                                   v.end(), *name, strerror(errno)));
      }
    }
    if (!premapped[i]) {
      if (is_file) {
        rv.source = RESTORER_VMA_FILE;
        rv.fd = fd;
      } else {
        rv.source = RESTORER_VMA_ANON_EMPTY;
      }
      areas.push_back({v.start(), v.end(), 0});
      continue;
    }
    int flags = MAP_PRIVATE | MAP_FIXED | (is_file ? 0 : MAP_ANONYMOUS);
    if (v.flags() & MAP_GROWSDOWN) flags |= MAP_GROWSDOWN;
    void* p = mmap(reinterpret_cast<void*>(cursor), len, PROT_READ | PROT_WRITE, flags,
                   is_file ? fd : -1, is_file ? static_cast<off_t>(v.pgoff()) : 0);
    if (fd >= 0) close(fd);
    if (p == MAP_FAILED) {
      return absl::InternalError(
          absl::StrFormat("premapping %#x-%#x: %s", v.start(), v.end(), strerror(errno)));
    }
    rv.source = RESTORER_VMA_PREMAPPED;
    rv.premap = cursor;
    areas.push_back({v.start(), v.end(), cursor});
    cursor += len;
  }
  uint64_t pages = 0;
  if (auto s = FillPages(ctx.images_dir, *pm, areas, pages); !s.ok()) return s;
  plan.pages_restored = pages;

  // vDSO: the same kernel gives the same layout; move ours where the task had its own.
  auto own = OwnSpecialAreas();
  if (!own.ok()) return own.status();
  for (auto [start, size] :
       {std::pair{own->vdso, own->vdso_size}, std::pair{own->vvar, own->vvar_size},
        std::pair{own->vclock, own->vclock_size}}) {
    if (size != 0) plan.kernel_areas.emplace_back(start, start + size);
  }
  if (vdso_size != 0) {
    if (vdso_size != own->vdso_size) {
      return absl::UnimplementedError(absl::StrFormat(
          "the dumped vDSO is %d bytes and this kernel's is %d: restoring on a kernel with a "
          "different vDSO is not supported yet",
          vdso_size, own->vdso_size));
    }
    args->vdso_cur = own->vdso, args->vdso_size = vdso_size, args->vdso_want = vdso_want;
  }
  // [vvar] comes first in the image, then [vvar_vclock] where the kernel has one.
  std::vector<std::pair<uint64_t, uint64_t>> cur;
  if (own->vvar_size) cur.emplace_back(own->vvar, own->vvar_size);
  if (own->vclock_size) cur.emplace_back(own->vclock, own->vclock_size);
  if (cur.size() != vvars.size() ||
      !std::equal(cur.begin(), cur.end(), vvars.begin(),
                  [](const auto& a, const auto& b) { return a.second == b.second; })) {
    return absl::UnimplementedError(
        "the dumped vvar areas differ from this kernel's: restoring on a kernel with a different "
        "vDSO layout is not supported yet");
  }
  if (!vvars.empty()) {
    args->vvar_cur = cur[0].first, args->vvar_size = cur[0].second,
    args->vvar_want = vvars[0].first;
  }
  if (vvars.size() > 1) {
    args->vvar_vclock_cur = cur[1].first, args->vvar_vclock_size = cur[1].second;
    args->vvar_vclock_want = vvars[1].first;
  }

  // mm fields for PR_SET_MM_MAP.
  restorer_mm& m = args->mm;
  m.start_code = mm.mm_start_code();
  m.end_code = mm.mm_end_code();
  m.start_data = mm.mm_start_data();
  m.end_data = mm.mm_end_data();
  m.start_brk = mm.mm_start_brk();
  m.brk = mm.mm_brk();
  m.start_stack = mm.mm_start_stack();
  m.arg_start = mm.mm_arg_start();
  m.arg_end = mm.mm_arg_end();
  m.env_start = mm.mm_env_start();
  m.env_end = mm.mm_env_end();
  if (mm.mm_saved_auxv_size() > RESTORER_MAX_AUXV) {
    return absl::DataLossError(path + ": auxv too long");
  }
  for (int i = 0; i < mm.mm_saved_auxv_size(); ++i) m.auxv[i] = mm.mm_saved_auxv(i);
  m.auxv_size = static_cast<uint32_t>(mm.mm_saved_auxv_size() * sizeof(uint64_t));
  m.exe_fd = -1;
  if (const std::string* exe = ctx.file_path(mm.exe_file_id())) {
    m.exe_fd = open(exe->c_str(), O_RDONLY);
    if (m.exe_fd < 0) {
      return absl::NotFoundError(
          absl::StrFormat("cannot open the executable %s: %s", *exe, strerror(errno)));
    }
  }
  log::Info("memory: %d VMAs, %d premapped bytes, %d pages restored, work area %#x-%#x",
            args->nr_vmas, premap_total, pages, plan.keep_start, plan.keep_end);
  return absl::OkStatus();
}

}  // namespace crpp::resources
