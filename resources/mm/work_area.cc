#include "resources/mm/work_area.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/strings/str_format.h"
#include "arch/x86_64/xsave.h"
#include "core/proc/proc.h"

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

// The current task's vdso-related areas, by name.
struct SpecialAreas {
  uint64_t vdso = 0, vdso_size = 0, vvar = 0, vvar_size = 0, vclock = 0, vclock_size = 0;
};

// Read once (LearnSpecialAreas), or at the first use.
absl::StatusOr<SpecialAreas> OwnSpecialAreas() {
  static std::optional<SpecialAreas> known;
  if (known) return *known;
  auto maps = proc::ReadMaps(getpid(), /*with_flags=*/false);
  if (!maps.ok()) return maps.status();
  SpecialAreas s;
  for (const auto& v : *maps) {
    if (v.path == "[vdso]") s.vdso = v.start, s.vdso_size = v.size();
    if (v.path == "[vvar]") s.vvar = v.start, s.vvar_size = v.size();
    if (v.path == "[vvar_vclock]") s.vclock = v.start, s.vclock_size = v.size();
  }
  known = s;
  return s;
}

}  // namespace

absl::Status LearnSpecialAreas() { return OwnSpecialAreas().status(); }

absl::StatusOr<uint64_t> MapWorkArea(const criu::mm_entry& mm, uint64_t premap_total,
                                     RestorePlan& plan) {
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

  return *keep + l.premap_off;
}

// Moves the vDSO areas where the task had its own: the same kernel gives
// the same layout.
absl::Status PlanSpecialAreas(RestorePlan& plan, const std::vector<const criu::vma_entry*>& vdso,
                              const std::vector<const criu::vma_entry*>& vvars) {
  restorer_args* args = plan.args;
  auto own = OwnSpecialAreas();
  if (!own.ok()) return own.status();
  for (auto [start, size] :
       {std::pair{own->vdso, own->vdso_size}, std::pair{own->vvar, own->vvar_size},
        std::pair{own->vclock, own->vclock_size}}) {
    if (size != 0) plan.kernel_areas.emplace_back(start, start + size);
  }
  if (!vdso.empty()) {
    uint64_t vdso_size = vdso.back()->end() - vdso.back()->start();
    if (vdso_size != own->vdso_size) {
      return absl::UnimplementedError(absl::StrFormat(
          "the dumped vDSO is %d bytes and this kernel's is %d: restoring on a kernel with a "
          "different vDSO is not supported yet",
          vdso_size, own->vdso_size));
    }
    args->vdso_cur = own->vdso, args->vdso_size = vdso_size;
    args->vdso_want = vdso.back()->start();
  }
  // [vvar] comes first in the image, then [vvar_vclock] where the kernel has one.
  std::vector<std::pair<uint64_t, uint64_t>> cur;
  if (own->vvar_size) cur.emplace_back(own->vvar, own->vvar_size);
  if (own->vclock_size) cur.emplace_back(own->vclock, own->vclock_size);
  if (cur.size() != vvars.size() ||
      !std::equal(cur.begin(), cur.end(), vvars.begin(),
                  [](const auto& a, const auto* b) { return a.second == b->end() - b->start(); })) {
    return absl::UnimplementedError(
        "the dumped vvar areas differ from this kernel's: restoring on a kernel with a different "
        "vDSO layout is not supported yet");
  }
  if (!vvars.empty()) {
    args->vvar_cur = cur[0].first, args->vvar_size = cur[0].second;
    args->vvar_want = vvars[0]->start();
  }
  if (vvars.size() > 1) {
    args->vvar_vclock_cur = cur[1].first, args->vvar_vclock_size = cur[1].second;
    args->vvar_vclock_want = vvars[1]->start();
  }
  return absl::OkStatus();
}

// The fields of PR_SET_MM_MAP.
absl::Status PlanMmFields(const RestoreContext& ctx, const criu::mm_entry& mm,
                          const std::string& mm_path, restorer_mm& m) {
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
    return absl::DataLossError(mm_path + ": auxv too long");
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
  return absl::OkStatus();
}

}  // namespace crpp::resources
