// The restorer blob, run for real: a forked child loads it, describes its own
// address space as "the task to restore" with a few changes (a mapping to
// move, one to create over garbage, two file mappings, a range to unmap,
// signal actions, timers, mm fields, robust list, rseq, fs/gs base, maybe a
// vDSO move), and jumps. rt_sigreturn must then land in landing.cc's stub
// with exactly the registers and vector state of the frame, which checks all
// of it from the inside and exits 42. Failures must exit with
// RESTORER_EXIT_BASE + step and report {step, -errno} on the status pipe.
#define BOOST_TEST_MODULE restorer
#include "restorer/restorer.h"

#include <asm/prctl.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "arch/x86_64/xsave.h"
#include "parasite/blob_loader.h"
#include "restorer/restorer_args.h"
#include "restorer/restorer_blob.h"
#include "tests/restorer/landing.h"

namespace {

namespace rb = crpp::blobs::restorer_blob;
using crpp::testing::g_expect;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kStackSize = 256 << 10;

enum class Vdso { kStay, kToFreeRange, kOverlapping };
enum class Fpu { kXsave, kNone };
enum class Fault { kNone, kBadPremap, kOverKeep };

struct Scenario {
  Vdso vdso = Vdso::kStay;
  Fpu fpu = Fpu::kXsave;
  Fault fault = Fault::kNone;
};

// The kernel's flag for "sa_restorer is set"; glibc keeps it to itself.
constexpr uint64_t kSaRestorer = 0x04000000;

uint64_t PageUp(uint64_t n) { return (n + kPage - 1) & ~(kPage - 1); }
uint64_t Bit(int sig) { return 1ull << (sig - 1); }

// The child must never return into Boost: any setup failure ends it here.
[[noreturn]] void Die(const char* what) {
  fprintf(stderr, "child: %s: %s\n", what, strerror(errno));
  _exit(3);
}

uint64_t Map(uint64_t len, int prot = PROT_READ | PROT_WRITE) {
  void* p = mmap(nullptr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) Die("mmap");
  return reinterpret_cast<uint64_t>(p);
}

// A range kept reserved (PROT_NONE) so that nothing else lands there before
// the restorer maps over it.
uint64_t Hole(uint64_t len) { return Map(len, PROT_NONE); }

// Never called: addresses for the sigactions.
void SomeHandler(int) {}
void SomeRestorer() {}

struct Area {
  uint64_t start = 0, size = 0;
};
struct SpecialAreas {
  Area vvar, vclock, vdso;
};

SpecialAreas ReadSpecialAreas() {
  std::ifstream maps("/proc/self/maps");
  SpecialAreas s;
  for (std::string line; std::getline(maps, line);) {
    unsigned long a, b;
    if (sscanf(line.c_str(), "%lx-%lx", &a, &b) != 2) continue;
    if (line.ends_with(" [vdso]")) s.vdso = {a, b - a};
    if (line.ends_with(" [vvar]")) s.vvar = {a, b - a};
    if (line.ends_with(" [vvar_vclock]")) s.vclock = {a, b - a};
  }
  return s;
}

// Fills the vDSO fields of `a`: where the areas are and where they must go.
// kOverlapping first parks them in the middle of a free range (so that the
// pages around are ours), then asks for a move one page down, onto itself.
void SetUpVdso(Vdso mode, restorer_args* a) {
  SpecialAreas s = ReadSpecialAreas();
  if (s.vdso.size == 0 || s.vvar.size == 0) Die("no [vdso]/[vvar] in /proc/self/maps");
  void* vdso_lib = dlopen("linux-vdso.so.1", RTLD_NOLOAD | RTLD_LAZY);
  void* fn = vdso_lib ? dlsym(vdso_lib, "__vdso_clock_gettime") : nullptr;
  const uint64_t kernel_vdso = s.vdso.start;  // where dlsym saw it
  const uint64_t base = s.vvar.start;
  const uint64_t span = s.vdso.start + s.vdso.size - base;
  uint64_t moved_base = base;
  if (mode == Vdso::kOverlapping) {
    moved_base = Hole(span + 4 * kPage) + 2 * kPage;
    for (Area* area : {&s.vvar, &s.vclock, &s.vdso}) {
      if (area->size == 0) continue;
      uint64_t to = moved_base + (area->start - base);
      if (mremap(reinterpret_cast<void*>(area->start), area->size, area->size,
                 MREMAP_MAYMOVE | MREMAP_FIXED, reinterpret_cast<void*>(to)) == MAP_FAILED) {
        Die("parking the vDSO");
      }
      area->start = to;
    }
  }
  const uint64_t want_base =
      mode == Vdso::kOverlapping ? moved_base - kPage : Hole(span + 2 * kPage) + kPage;
  auto want = [&](const Area& area) { return area.start - moved_base + want_base; };
  a->vvar_cur = s.vvar.start, a->vvar_size = s.vvar.size, a->vvar_want = want(s.vvar);
  a->vdso_cur = s.vdso.start, a->vdso_size = s.vdso.size, a->vdso_want = want(s.vdso);
  if (s.vclock.size != 0) {
    a->vvar_vclock_cur = s.vclock.start, a->vvar_vclock_size = s.vclock.size;
    a->vvar_vclock_want = want(s.vclock);
    g_expect.vvar_vclock = a->vvar_vclock_want;
  }
  g_expect.vvar = a->vvar_want;
  g_expect.vdso = a->vdso_want;
  if (fn != nullptr) {
    g_expect.vdso_clock_gettime = reinterpret_cast<uint64_t>(fn) - kernel_vdso + a->vdso_want;
  }
}

// PR_SET_MM_MAP gets this process's own values, but a brk one page higher
// and AT_FLAGS changed in the auxv, so that the landing code can see it acted.
void SetUpMm(restorer_args* a) {
  std::ifstream in("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::vector<uint64_t> f(3);  // f[n] is field n of proc(5), from field 3 on
  for (std::string tok; fields >> tok;) f.push_back(strtoull(tok.c_str(), nullptr, 10));
  if (f.size() < 52) Die("short /proc/self/stat");
  restorer_mm& m = a->mm;
  m.start_code = f[26], m.end_code = f[27], m.start_stack = f[28];
  m.start_data = f[45], m.end_data = f[46], m.start_brk = f[47];
  m.arg_start = f[48], m.arg_end = f[49], m.env_start = f[50], m.env_end = f[51];
  m.brk = static_cast<uint64_t>(syscall(SYS_brk, 0)) + kPage;
  g_expect.brk = m.brk;

  std::ifstream auxv_file("/proc/self/auxv", std::ios::binary);
  std::string auxv((std::istreambuf_iterator<char>(auxv_file)), std::istreambuf_iterator<char>());
  if (auxv.empty() || auxv.size() > sizeof(m.auxv)) Die("/proc/self/auxv");
  memcpy(m.auxv, auxv.data(), auxv.size());
  m.auxv_size = static_cast<uint32_t>(auxv.size());
  for (size_t i = 0; m.auxv[i] != 0; i += 2) {
    if (m.auxv[i] == 8 /* AT_FLAGS */) m.auxv[i + 1] = 0x5a;
  }
  g_expect.auxv_flags = 0x5a;
}

restorer_vma& AddVma(restorer_args* a, uint64_t start, uint64_t len, uint32_t prot, uint32_t flags,
                     uint32_t source) {
  restorer_vma& v = a->vmas[a->nr_vmas++];
  v.start = start, v.end = start + len, v.prot = prot, v.flags = flags, v.source = source;
  v.fd = -1;
  return v;
}

void SetUpMemory(const Scenario& sc, restorer_args* a) {
  const uint64_t scratch = Map(2 * kPage);
  a->unmap[a->nr_unmap++] = {scratch, scratch + 2 * kPage};
  g_expect.unmapped = scratch, g_expect.unmapped_len = 2 * kPage;

  // Contents premapped read-write, to be moved and made read-only.
  const uint64_t len = 3 * kPage;
  const uint64_t src = Map(len);
  for (uint64_t i = 0; i < len; ++i) reinterpret_cast<uint8_t*>(src)[i] = uint8_t(i * 7 + 3);
  restorer_vma& moved =
      AddVma(a, Hole(len), len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, RESTORER_VMA_PREMAPPED);
  moved.premap = src;
  moved.madv = 1ull << MADV_DONTDUMP;
  g_expect.premap_src = src, g_expect.premap_dest = moved.start, g_expect.premap_len = len;
  if (sc.fault == Fault::kBadPremap) {
    moved.premap = Hole(kPage);
    munmap(reinterpret_cast<void*>(moved.premap), kPage);  // nothing there any more
  }
  if (sc.fault == Fault::kOverKeep) moved.start = a->keep_start, moved.end = a->keep_start + len;

  // A fresh mapping over garbage: MAP_FIXED must replace it with zeros.
  const uint64_t anon = Map(2 * kPage);
  memset(reinterpret_cast<void*>(anon), 0xee, 2 * kPage);
  AddVma(a, anon, 2 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
         RESTORER_VMA_ANON_EMPTY);
  g_expect.anon = anon, g_expect.anon_len = 2 * kPage;

  // One fd behind two VMAs: page 1 shared, page 0 private.
  int fd = memfd_create("restorer_test", 0);
  if (fd < 0) Die("memfd_create");
  std::string pages = std::string(kPage, 'A') + std::string(kPage, 'B');
  if (pwrite(fd, pages.data(), pages.size(), 0) != static_cast<ssize_t>(pages.size())) {
    Die("memfd write");
  }
  restorer_vma& shared = AddVma(a, Hole(kPage), kPage, PROT_READ, MAP_SHARED, RESTORER_VMA_FILE);
  shared.fd = fd, shared.pgoff = kPage;
  restorer_vma& priv =
      AddVma(a, Hole(kPage), kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE, RESTORER_VMA_FILE);
  priv.fd = fd;
  g_expect.file_shared = shared.start, g_expect.file_private = priv.start, g_expect.file_fd = fd;
}

void SetUpSignalsAndThread(restorer_args* a) {
  a->sigactions[SIGUSR1 - 1] = {reinterpret_cast<uint64_t>(&SomeHandler),
                                SA_SIGINFO | kSaRestorer | SA_RESTART,
                                reinterpret_cast<uint64_t>(&SomeRestorer), Bit(SIGUSR2)};
  a->sigactions[SIGUSR2 - 1] = {1 /* SIG_IGN */, kSaRestorer,
                                reinterpret_cast<uint64_t>(&SomeRestorer), 0};
  // SIGKILL's action cannot change: the restorer must skip it, not fail.
  a->sigactions[SIGKILL - 1] = {1, 0, 0, 0};
  a->sigaction_set = Bit(SIGUSR1) | Bit(SIGUSR2) | Bit(SIGKILL);
  g_expect.usr1 = a->sigactions[SIGUSR1 - 1];
  g_expect.usr2 = a->sigactions[SIGUSR2 - 1];
  a->sigmask = Bit(SIGUSR2) | Bit(SIGTERM);
  g_expect.sigmask = a->sigmask;

  a->itimers[ITIMER_REAL] = {0, 0, 1000, 0};
  a->itimers[ITIMER_PROF] = {5, 0, 500, 0};
  g_expect.real_timer_sec = 1000, g_expect.prof_interval_sec = 5;

  // An empty robust list: its head points to itself.
  static uint64_t robust_head[3];
  robust_head[0] = reinterpret_cast<uint64_t>(robust_head);
  static int tid_word;
  alignas(32) static struct rseq task_rseq;
  task_rseq.cpu_id = static_cast<uint32_t>(RSEQ_CPU_ID_UNINITIALIZED);
  a->robust_list = reinterpret_cast<uint64_t>(robust_head), a->robust_list_len = 24;
  a->clear_tid_addr = reinterpret_cast<uint64_t>(&tid_word);
  a->rseq_abi = reinterpret_cast<uint64_t>(&task_rseq), a->rseq_len = 32, a->rseq_sig = RSEQ_SIG;
  crpp::restorer::SetEngineRseq(*a);
  g_expect.robust_head = a->robust_list, g_expect.tid_address = a->clear_tid_addr;
  g_expect.task_rseq = a->rseq_abi, g_expect.engine_rseq = a->engine_rseq_abi;
}

void SetUpRegisters(restorer_args* a) {
  restorer_regs& r = a->regs;
  const uint64_t stack = Map(64 << 10);
  r.ax = 0x1111111111111111, r.bx = 0x2222222222222222, r.cx = 0x3333333333333333;
  r.dx = 0x4444444444444444, r.si = 0x5555555555555555, r.di = 0x6666666666666666;
  r.bp = 0x7777777777777777, r.sp = stack + (64 << 10) - 8;
  r.r8 = 0x8888888888888888, r.r9 = 0x9999999999999999, r.r10 = 0xaaaaaaaaaaaaaaaa;
  r.r11 = 0xbbbbbbbbbbbbbbbb, r.r12 = 0xcccccccccccccccc, r.r13 = 0xdddddddddddddddd;
  r.r14 = 0xeeeeeeeeeeeeeeee, r.r15 = 0x0f0f0f0f0f0f0f0f;
  r.ip = reinterpret_cast<uint64_t>(&crpp::testing::restorer_test_landing);
  uint16_t cs, ss;
  asm("mov %%cs, %0" : "=r"(cs));
  asm("mov %%ss, %0" : "=r"(ss));
  r.cs = cs, r.ss = ss;
  constexpr uint64_t kCarry = 0x1, kZero = 0x40, kOverflow = 0x800, kInterrupts = 0x200;
  r.flags = kCarry | kZero | kOverflow | kInterrupts | 0x2;
  syscall(SYS_arch_prctl, ARCH_GET_FS, &r.fs_base);
  r.gs_base = 0x0000123456789000;
  const uint64_t order[16] = {r.ax, r.bx, r.cx,  r.dx,  r.si,  r.di,  r.bp,  r.sp,
                              r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15};
  memcpy(g_expect.gpr, order, sizeof(order));
  g_expect.flags_mask = kCarry | kZero | kOverflow | 0x4 /* PF */ | 0x80 /* SF */;
  g_expect.flags = kCarry | kZero | kOverflow;
  g_expect.fs_base = r.fs_base, g_expect.gs_base = r.gs_base;
}

// XSAVE with marker values in xmm0/ymm1/zmm2/zmm17, as a dump would find them.
void SetUpXsave(Fpu fpu, const crpp::arch::XsaveLayout& layout, uint64_t buf, restorer_args* a) {
  auto* m = reinterpret_cast<unsigned char*>(&g_expect.markers);
  for (size_t i = 0; i < sizeof(g_expect.markers); ++i)
    m[i] = static_cast<unsigned char>(i * 13 + 1);
  int level = crpp::testing::kSse;
  if ((layout.xcr0 & 0x4) != 0) level = crpp::testing::kAvx;
  if ((layout.xcr0 & 0xe0) == 0xe0) level = crpp::testing::kAvx512;
  crpp::testing::g_landing_vector_level = level;
  g_expect.vector_level = level;
  memset(reinterpret_cast<void*>(buf), 0, layout.enabled_size);
  crpp::testing::restorer_test_capture_xsave(reinterpret_cast<void*>(buf), layout.xcr0,
                                             &g_expect.markers, level);
  g_expect.vectors_restored = fpu == Fpu::kXsave;
  if (fpu == Fpu::kXsave) {
    a->xsave = buf, a->xsave_size = layout.enabled_size, a->xfeatures = layout.xcr0;
  }
}

[[noreturn]] void RunChild(const Scenario& sc, int status_fd) {
  // Boost's handlers would longjmp back into the test runner, in the child.
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP}) signal(sig, SIG_DFL);
  auto layout = crpp::arch::ReadXsaveLayout();
  if (!layout.ok()) Die("ReadXsaveLayout");

  // The keep area: blob, args, xsave image, stack.
  const uint64_t blob_len = PageUp(rb::kMemSize);
  const uint64_t args_len = PageUp(sizeof(restorer_args));
  const uint64_t xsave_len = PageUp(layout->enabled_size + 64);
  const uint64_t keep_len = blob_len + args_len + xsave_len + kStackSize;
  const uint64_t keep = Map(keep_len);
  if (!crpp::LoadBlob(reinterpret_cast<void*>(keep), blob_len, rb::kBlob).ok()) Die("LoadBlob");
  if (mprotect(reinterpret_cast<void*>(keep), blob_len, PROT_READ | PROT_EXEC) != 0) {
    Die("mprotect");
  }
  auto* a = new (reinterpret_cast<void*>(keep + blob_len)) restorer_args();
  a->version = RESTORER_ARGS_VERSION;
  a->keep_start = keep, a->keep_end = keep + keep_len;
  a->stack_top = keep + keep_len;
  a->status_fd = status_fd;
  a->mm.exe_fd = -1;
  g_expect = {};
  g_expect.status_fd = status_fd;

  SetUpMemory(sc, a);
  SetUpMm(a);
  SetUpSignalsAndThread(a);
  SetUpRegisters(a);
  if (sc.vdso != Vdso::kStay) SetUpVdso(sc.vdso, a);
  // Last: nothing may touch the vector registers' saved image after this.
  SetUpXsave(sc.fpu, *layout, keep + blob_len + args_len, a);
  crpp::restorer::EnterRestorer(keep, a);
}

struct Outcome {
  int status = 0;               // from waitpid
  std::vector<int32_t> report;  // what came through the status pipe
};

Outcome Run(const Scenario& sc) {
  int pipefd[2];
  BOOST_REQUIRE(pipe(pipefd) == 0);
  fflush(nullptr);
  pid_t pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    close(pipefd[0]);
    RunChild(sc, pipefd[1]);
  }
  close(pipefd[1]);
  Outcome out;
  std::string bytes;
  for (;;) {
    pollfd p{pipefd[0], POLLIN, 0};
    if (poll(&p, 1, 20000) <= 0) {  // a hung child must not hang the test
      kill(pid, SIGKILL);
      BOOST_ERROR("the child hung");
      break;
    }
    char buf[64];
    ssize_t n = read(pipefd[0], buf, sizeof(buf));
    if (n <= 0) break;
    bytes.append(buf, static_cast<size_t>(n));
  }
  close(pipefd[0]);
  BOOST_REQUIRE(waitpid(pid, &out.status, 0) == pid);
  out.report.resize(bytes.size() / 4);
  memcpy(out.report.data(), bytes.data(), out.report.size() * 4);
  return out;
}

std::string Describe(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

void ExpectLanded(const Scenario& sc) {
  Outcome out = Run(sc);
  BOOST_TEST(Describe(out.status) == "exit 42");
  BOOST_TEST(out.report.empty(), "the status pipe carried a failure report");
}

}  // namespace

BOOST_AUTO_TEST_CASE(restores_the_task_and_returns_into_it) { ExpectLanded({}); }

BOOST_AUTO_TEST_CASE(moves_the_vdso_to_a_free_range) { ExpectLanded({.vdso = Vdso::kToFreeRange}); }

BOOST_AUTO_TEST_CASE(moves_the_vdso_onto_an_overlapping_range) {
  ExpectLanded({.vdso = Vdso::kOverlapping});
}

BOOST_AUTO_TEST_CASE(without_an_xsave_image_vector_registers_start_clean) {
  ExpectLanded({.fpu = Fpu::kNone});
}

BOOST_AUTO_TEST_CASE(a_bad_premap_address_fails_the_vma_step) {
  Outcome out = Run({.fault = Fault::kBadPremap});
  BOOST_TEST(Describe(out.status) ==
             "exit " + std::to_string(RESTORER_EXIT_BASE + RESTORER_STEP_VMAS));
  BOOST_REQUIRE(out.report.size() == 2u);
  BOOST_TEST(out.report[0] == RESTORER_STEP_VMAS);
  // mremap of an unmapped source: EFAULT on older kernels, EINVAL on 6.18.
  BOOST_TEST((out.report[1] == -EFAULT || out.report[1] == -EINVAL), "errno " << -out.report[1]);
}

BOOST_AUTO_TEST_CASE(a_vma_over_the_keep_area_is_refused_before_anything_changes) {
  Outcome out = Run({.fault = Fault::kOverKeep});
  BOOST_TEST(Describe(out.status) ==
             "exit " + std::to_string(RESTORER_EXIT_BASE + RESTORER_STEP_ARGS));
  BOOST_REQUIRE(out.report.size() == 2u);
  BOOST_TEST(out.report[0] == RESTORER_STEP_ARGS);
  BOOST_TEST(out.report[1] == -EINVAL);
}
