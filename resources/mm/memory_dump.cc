// Dump side of the Memory plugin.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/infect/parasite.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "core/ptrace/task.h"
#include "mm.pb.h"
#include "pagemap.pb.h"
#include "resources/mm/memory.h"

namespace crpp::resources {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kPmPresent = 1ull << 63;
constexpr uint64_t kPmSwapped = 1ull << 62;
constexpr uint64_t kPmFileOrShared = 1ull << 61;
constexpr uint64_t kPmExclusive = 1ull << 56;
constexpr uint64_t kPmPfnMask = (1ull << 55) - 1;

// Why a mapping cannot be dumped yet, or "".
std::string Unsupported(const proc::Vma& v) {
  if (v.is_file()) {
    // Shared memory objects: the shmem plugin dumps their contents.
    if (v.path.rfind("/memfd:", 0) == 0) {
      return v.shared ? "" : "a private mapping of a memfd (" + v.path + "): not supported yet";
    }
    if (v.path == "/dev/zero" && v.deleted && v.shared) return "";
    if (v.deleted) return "a mapping of a deleted file (" + v.path + "): not supported yet";
    if (v.path.empty() || v.path[0] != '/') return "a mapping of " + v.path + ": not supported yet";
    if (v.path.rfind("/memfd:", 0) == 0 || v.path.rfind("/SYSV", 0) == 0) {
      return "a shared memory mapping (" + v.path + "): not supported yet";
    }
    return "";
  }
  if (v.shared) return "a shared anonymous mapping: not supported yet";
  if (v.path.empty() || v.path == "[heap]" || v.path == "[stack]" || v.path == "[vdso]" ||
      v.path == "[vvar]" || v.path == "[vvar_vclock]" || v.path == "[vsyscall]") {
    return "";
  }
  return "a special mapping " + v.path + ": not supported yet";
}

// The physical frame of the shared zero page: pages mapped to it hold only
// zeros and are not stored.
uint64_t ReadZeroPfn() {
  void* p = mmap(nullptr, kPage, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 0;
  volatile char c = *static_cast<volatile char*>(p);  // maps the zero page
  (void)c;
  uint64_t entry = 0;
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    pread(fd, &entry, sizeof entry, static_cast<off_t>(reinterpret_cast<uint64_t>(p) / kPage * 8));
    close(fd);
  }
  munmap(p, kPage);
  return (entry & kPmPresent) ? (entry & kPmPfnMask) : 0;
}

uint32_t Prot(const proc::Vma& v) {
  return (v.read ? PROT_READ : 0) | (v.write ? PROT_WRITE : 0) | (v.exec ? PROT_EXEC : 0);
}

struct Range {
  uint64_t start, pages;
  bool shared;     // mapped more than once: kPeShared
  bool continues;  // the previous run goes on here, split only by `shared`
};

// Pages of `v` to store, as runs of consecutive pages that are all shared or
// all not.
absl::Status CollectPages(int pagemap_fd, const proc::Vma& v, uint64_t zero_pfn,
                          std::vector<Range>& out, DumpStats& stats) {
  uint64_t n = v.size() / kPage;
  std::vector<uint64_t> entries(n);
  ssize_t want = static_cast<ssize_t>(n * 8);
  if (pread(pagemap_fd, entries.data(), static_cast<size_t>(want),
            static_cast<off_t>(v.start / kPage * 8)) != want) {
    return absl::InternalError(
        absl::StrFormat("pagemap read for %#x-%#x: %s", v.start, v.end, strerror(errno)));
  }
  stats.pages_scanned += n;
  // Runs never cross a VMA boundary, so each pagemap entry lies in one VMA.
  const size_t first_of_vma = out.size();
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t e = entries[i];
    bool take = false;
    if (e & kPmSwapped) {
      take = true;
    } else if (e & kPmPresent) {
      bool anon_page = !(e & kPmFileOrShared);
      if (!v.is_file()) {
        take = zero_pfn == 0 || (e & kPmPfnMask) != zero_pfn;
        if (!take) ++stats.pages_zero;
      } else {
        take = anon_page;  // a private copy of a file page (written to)
      }
    }
    if (!take) continue;
    // Another mapping of the same page (a parent's or a child's, after a
    // fork) is what a restore can share again. A swapped page does not say.
    bool shared = (e & kPmPresent) && !(e & kPmExclusive);
    uint64_t addr = v.start + i * kPage;
    bool adjacent =
        out.size() > first_of_vma && out.back().start + out.back().pages * kPage == addr;
    if (adjacent && out.back().shared == shared) {
      ++out.back().pages;
    } else {
      out.push_back({addr, 1, shared, adjacent});
    }
  }
  return absl::OkStatus();
}

uint64_t Micros(std::chrono::steady_clock::time_point from) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - from)
          .count());
}

// How many tasks' pages may be on their way at once (each with its drain
// thread, parasite and pages image open). Two drains keep the two CPUs of
// the benchmark's VM copying; the others are queued so that a drain still
// runs beside the oldest one while the engine waits for it, cures it and
// infects the next task (the tree of 100 dumps in 0.49 s with 6, 0.56 s
// with 2; more than 6 gains nothing).
constexpr size_t kPageDumpsInFlight = 6;

// One task's pages on their way into its pages image: the parasite is in,
// its drain thread copies, and the task plugin's state is asked for at the
// end (one infection per task). Finish() or the destructor (after a failure
// elsewhere) cures the task and gives unreadable areas their protection back.
class PageDump : public DumpContext::Deferred {
 public:
  PageDump(DumpContext& ctx, criu::mm_entry mm, std::vector<proc::Vma> unreadable,
           std::string pages_path)
      : ctx_(ctx),
        pid_(ctx.pid),
        task_(*ctx.task),
        mm_(std::move(mm)),
        unreadable_(std::move(unreadable)),
        pages_path_(std::move(pages_path)) {}

  ~PageDump() override {
    parasite_.reset();  // cures the task if Finish() did not
    if (pages_fd_ >= 0) close(pages_fd_);
    if (opened_) (void)Reprotect();
  }

  absl::Status Start(const std::vector<infect::PageRange>& pages) {
    pages_fd_ = open(pages_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (pages_fd_ < 0) {
      return absl::PermissionDeniedError(absl::StrFormat("%s: %s", pages_path_, strerror(errno)));
    }
    // Unreadable areas are opened for the time of the copy.
    opened_ = true;
    for (const proc::Vma& v : unreadable_) {
      auto r = task_.SyscallOk("mprotect", SYS_mprotect, v.start, v.size(), Prot(v) | PROT_READ);
      if (!r.ok()) return r.status();
    }
    // The parasite vmsplices the task's pages into a pipe and the drain
    // splices them into the image: no copy in between, and the task does not
    // copy pages it shares copy-on-write.
    auto parasite = infect::Parasite::Infect(task_);
    if (!parasite.ok()) return parasite.status();
    parasite_ = *std::move(parasite);
    return Annotated(parasite_->StartDumpPages(pages, pages_fd_));
  }

  absl::Status Finish() override {
    auto t0 = std::chrono::steady_clock::now();
    absl::Status s = Annotated(parasite_->FinishDumpPages());
    if (s.ok()) {
      auto state = parasite_->GetTaskState();
      if (state.ok()) {
        mm_.set_mm_brk(state->brk);
        mm_.set_dumpable(state->dumpable);
        ctx_.task_states[pid_] = std::make_shared<const infect::TaskState>(*std::move(state));
      } else {
        s = state.status();
      }
    }
    absl::Status cured = parasite_->Cure();
    parasite_.reset();
    if (s.ok()) s = cured;
    close(pages_fd_);
    pages_fd_ = -1;
    opened_ = false;
    absl::Status reprotected = Reprotect();
    if (s.ok()) s = reprotected;
    ctx_.stats->memdump_us += Micros(t0);
    if (!s.ok()) return s;
    auto mw = images::TypedImageWriter<criu::mm_entry>::Create(
        absl::StrFormat("%s/mm-%d.img", ctx_.images_dir, pid_), images::Mm());
    if (!mw.ok()) return mw.status();
    if (auto w = mw->Write(mm_); !w.ok()) return w;
    return mw->Close();
  }

 private:
  absl::Status Annotated(absl::Status s) const {
    if (s.ok()) return s;
    return absl::Status(s.code(), pages_path_ + ": " + std::string(s.message()));
  }

  // Every unreadable area gets its protection back, whatever fails.
  absl::Status Reprotect() {
    absl::Status s;
    for (const proc::Vma& v : unreadable_) {
      auto r = task_.SyscallOk("mprotect (restore)", SYS_mprotect, v.start, v.size(), Prot(v));
      if (!r.ok() && s.ok()) s = r.status();
    }
    return s;
  }

  DumpContext& ctx_;
  const pid_t pid_;
  ptrace::Task& task_;
  criu::mm_entry mm_;  // written once the parasite told brk and dumpable
  std::vector<proc::Vma> unreadable_;
  const std::string pages_path_;
  int pages_fd_ = -1;
  bool opened_ = false;  // unreadable areas may be readable now
  std::unique_ptr<infect::Parasite> parasite_;
};

}  // namespace

absl::Status Memory::Precheck(DumpContext& ctx) {
  if (ctx.zombie) return absl::OkStatus();
  for (const proc::Vma& v : *ctx.maps) {
    if (std::string why = Unsupported(v); !why.empty()) {
      return absl::UnimplementedError(
          absl::StrFormat("pid %d: %#x-%#x is %s", ctx.pid, v.start, v.end, why));
    }
  }
  return absl::OkStatus();
}

absl::Status Memory::Dump(DumpContext& ctx) {
  if (ctx.zombie) return absl::OkStatus();
  pid_t pid = ctx.pid;
  // The map Precheck just accepted, read after the freeze: every VMA in it
  // is of a kind this plugin dumps.
  const std::vector<proc::Vma>& maps = *ctx.maps;
  const proc::Stat& st = *ctx.stat;
  criu::mm_entry mm;
  mm.set_mm_start_code(st.start_code);
  mm.set_mm_end_code(st.end_code);
  mm.set_mm_start_data(st.start_data);
  mm.set_mm_end_data(st.end_data);
  mm.set_mm_start_stack(st.start_stack);
  mm.set_mm_start_brk(st.start_brk);
  mm.set_mm_arg_start(st.arg_start);
  mm.set_mm_arg_end(st.arg_end);
  mm.set_mm_env_start(st.env_start);
  mm.set_mm_env_end(st.env_end);
  auto exe = proc::ReadLink(absl::StrFormat("/proc/%d/exe", pid));
  if (!exe.ok()) return exe.status();
  mm.set_exe_file_id(ctx.files->AddPath(*exe, O_RDONLY));
  auto auxv = proc::ReadAuxv(pid);
  if (!auxv.ok()) return auxv.status();
  for (uint64_t w : *auxv) mm.add_mm_saved_auxv(w);

  std::string pagemap_path = absl::StrFormat("/proc/%d/pagemap", pid);
  int pagemap_fd = open(pagemap_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (pagemap_fd < 0) {
    return absl::PermissionDeniedError(absl::StrFormat("%s: %s", pagemap_path, strerror(errno)));
  }
  static const uint64_t zero_pfn = ReadZeroPfn();
  std::vector<Range> ranges;
  std::vector<proc::Vma> unreadable;
  absl::Status status;
  for (const proc::Vma& v : maps) {
    criu::vma_entry* e = mm.add_vmas();
    e->set_start(v.start);
    e->set_end(v.end);
    e->set_pgoff(v.is_file() ? v.pgoff : 0);
    e->set_shmid(0);
    e->set_prot(Prot(v));
    uint32_t flags = v.shared ? MAP_SHARED : MAP_PRIVATE;
    if (!v.is_file()) flags |= MAP_ANONYMOUS;
    if (v.growsdown) flags |= MAP_GROWSDOWN;
    e->set_flags(flags);
    e->set_fd(-1);
    uint32_t status_bits = kVmaRegular;
    bool dump_pages = true;
    if (v.path == "[vdso]") {
      status_bits |= kVmaVdso;
      dump_pages = false;
    } else if (v.path == "[vvar]" || v.path == "[vvar_vclock]") {
      status_bits |= kVmaVvar;
      dump_pages = false;
    } else if (v.path == "[vsyscall]") {
      status_bits = kVmaVsyscall;
      dump_pages = false;
    } else if (v.path.rfind("/memfd:", 0) == 0) {
      auto id = ctx.memfd_ids.find(v.inode);
      if (id == ctx.memfd_ids.end()) {
        status = absl::InternalError(absl::StrFormat(
            "pid %d: %#x-%#x maps a memfd the shmem plugin did not see", pid, v.start, v.end));
        break;
      }
      status_bits |= kVmaFileShared | kVmaMemfd;
      e->set_shmid(id->second);
      dump_pages = false;  // the shmem plugin has them
    } else if (v.path == "/dev/zero" && v.deleted) {
      status_bits |= kVmaAnonShared;
      e->set_flags(flags | MAP_ANONYMOUS);
      e->set_shmid(v.inode);
      dump_pages = false;  // the shmem plugin has them
    } else if (v.is_file()) {
      status_bits |= v.shared ? kVmaFileShared : kVmaFilePrivate;
      e->set_shmid(ctx.files->AddPath(v.path, v.shared && v.write ? O_RDWR : O_RDONLY));
      dump_pages = !v.shared;  // shared file pages live in the file
    } else {
      status_bits |= kVmaAnonPrivate;
      if (v.path == "[heap]") status_bits |= kVmaHeap;
      if (v.path == "[stack]") status_bits |= kVmaStack;
    }
    e->set_status(status_bits);
    if (dump_pages && v.read) {
      if (auto s = CollectPages(pagemap_fd, v, zero_pfn, ranges, *ctx.stats); !s.ok()) {
        status = s;
        break;
      }
    } else if (dump_pages && !v.is_file()) {
      // A PROT_NONE area may hold data (written before it was protected):
      // it is made readable just while its pages are read.
      size_t before = ranges.size();
      if (auto s = CollectPages(pagemap_fd, v, zero_pfn, ranges, *ctx.stats); !s.ok()) {
        status = s;
        break;
      }
      if (ranges.size() != before) unreadable.push_back(v);
    }
  }
  close(pagemap_fd);
  if (!status.ok()) return status;

  // Pagemap and pages: one pagemap entry per run, contents in the same order.
  // One pages image per task, numbered by the task's id.
  const uint32_t pages_id = ctx.task_id;
  auto pw = images::ImageWriter::Create(absl::StrFormat("%s/pagemap-%d.img", ctx.images_dir, pid),
                                        images::Pagemap());
  if (!pw.ok()) return pw.status();
  criu::pagemap_head head;
  head.set_pages_id(pages_id);
  if (auto s = (*pw)->Write(head); !s.ok()) return s;
  std::vector<infect::PageRange> pages;
  for (const Range& r : ranges) {
    criu::pagemap_entry pe;
    pe.set_vaddr(r.start);
    pe.set_compat_nr_pages(static_cast<uint32_t>(std::min<uint64_t>(r.pages, UINT32_MAX)));
    pe.set_flags(kPePresent | (r.shared ? kPeShared : 0));
    pe.set_nr_pages(r.pages);
    if (auto s = (*pw)->Write(pe); !s.ok()) return s;
    // The parasite gets whole runs of a VMA, whatever the flag.
    if (r.continues) {
      pages.back().pages += r.pages;
    } else {
      pages.push_back({r.start, r.pages});
    }
    ctx.stats->pages_written += r.pages;
  }
  if (auto s = (*pw)->Close(); !s.ok()) return s;

  // The pages themselves come while the next tasks are infected: a few
  // tasks at a time, so the drains keep the CPUs busy without holding the
  // fds and areas of every task of a big tree at once.
  while (ctx.deferred_count() >= kPageDumpsInFlight) {
    if (auto s = ctx.FinishOldestDeferred(); !s.ok()) return s;
  }
  auto t0 = std::chrono::steady_clock::now();
  const int vmas = mm.vmas_size();
  auto dump =
      std::make_unique<PageDump>(ctx, std::move(mm), std::move(unreadable),
                                 absl::StrFormat("%s/pages-%d.img", ctx.images_dir, pages_id));
  absl::Status started = dump->Start(pages);
  ctx.stats->memdump_us += Micros(t0);
  if (!started.ok()) return started;
  ctx.Defer(std::move(dump));
  log::Info("memory: pid %d: %d VMAs, %d pages scanned, %d written, %d zero pages skipped", pid,
            vmas, ctx.stats->pages_scanned, ctx.stats->pages_written, ctx.stats->pages_zero);
  return absl::OkStatus();
}

}  // namespace crpp::resources
