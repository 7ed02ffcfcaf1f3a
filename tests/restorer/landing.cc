#include "tests/restorer/landing.h"

#include <asm/prctl.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#define HIDDEN __attribute__((visibility("hidden")))

namespace crpp::testing {
// C linkage (see the header): the asm below names them.
LandingExpect g_expect;
int g_landing_vector_level;
}  // namespace crpp::testing

extern "C" {
// What the asm stub saw on arrival, before any compiled code could change it.
HIDDEN uint64_t g_landed_gpr[16];
HIDDEN uint64_t g_landed_flags;
HIDDEN unsigned char g_landed_vec[sizeof(crpp::testing::VectorMarkers)];
[[noreturn]] HIDDEN void LandingCheck();
}

// Hidden symbols and rip-relative addressing: this code is linked into the
// test executable itself, and runs where the test task's memory still is.
// Vector offsets follow VectorMarkers: xmm0 at 0, ymm1 at 16, zmm2 at 48,
// zmm17 at 112.
__asm__(R"(
    .text
    .globl restorer_test_landing
    .type restorer_test_landing, @function
restorer_test_landing:
    pushfq
    popq g_landed_flags(%rip)
    movq %rax, g_landed_gpr+0(%rip)
    movq %rbx, g_landed_gpr+8(%rip)
    movq %rcx, g_landed_gpr+16(%rip)
    movq %rdx, g_landed_gpr+24(%rip)
    movq %rsi, g_landed_gpr+32(%rip)
    movq %rdi, g_landed_gpr+40(%rip)
    movq %rbp, g_landed_gpr+48(%rip)
    movq %rsp, g_landed_gpr+56(%rip)
    movq %r8, g_landed_gpr+64(%rip)
    movq %r9, g_landed_gpr+72(%rip)
    movq %r10, g_landed_gpr+80(%rip)
    movq %r11, g_landed_gpr+88(%rip)
    movq %r12, g_landed_gpr+96(%rip)
    movq %r13, g_landed_gpr+104(%rip)
    movq %r14, g_landed_gpr+112(%rip)
    movq %r15, g_landed_gpr+120(%rip)
    movdqu %xmm0, g_landed_vec+0(%rip)
    cmpl $1, g_landing_vector_level(%rip)
    jb 1f
    vmovdqu %ymm1, g_landed_vec+16(%rip)
    cmpl $2, g_landing_vector_level(%rip)
    jb 1f
    vmovdqu64 %zmm2, g_landed_vec+48(%rip)
    vmovdqu64 %zmm17, g_landed_vec+112(%rip)
1:
    cld
    andq $-16, %rsp
    call LandingCheck
    ud2
    .size restorer_test_landing, .-restorer_test_landing

    .globl restorer_test_capture_xsave
    .type restorer_test_capture_xsave, @function
restorer_test_capture_xsave:
    movdqu (%rdx), %xmm0
    cmpl $1, %ecx
    jb 2f
    vmovdqu 16(%rdx), %ymm1
    cmpl $2, %ecx
    jb 2f
    vmovdqu64 48(%rdx), %zmm2
    vmovdqu64 112(%rdx), %zmm17
2:
    movl %esi, %eax
    shrq $32, %rsi
    movl %esi, %edx
    xsave (%rdi)
    ret
    .size restorer_test_capture_xsave, .-restorer_test_capture_xsave
)");

namespace {

using crpp::testing::g_expect;

int failures = 0;

void Say(const char* text) { syscall(SYS_write, 2, text, strlen(text)); }

void Check(bool ok, const char* what, uint64_t got = 0, uint64_t want = 0) {
  if (ok) return;
  char line[256];
  snprintf(line, sizeof(line), "landing: %s (got %#" PRIx64 ", want %#" PRIx64 ")\n", what, got,
           want);
  Say(line);
  ++failures;
}

void CheckEq(uint64_t got, uint64_t want, const char* what) { Check(got == want, what, got, want); }

// A whole /proc file, in a static buffer: malloc belongs to the engine's
// world, and its state after the restore is not this test's business.
const char* ReadProc(const char* path) {
  static char buf[1 << 20];
  size_t n = 0;
  long fd = syscall(SYS_open, path, O_RDONLY);
  if (fd >= 0) {
    for (long r;
         n < sizeof(buf) - 1 && (r = syscall(SYS_read, fd, buf + n, sizeof(buf) - 1 - n)) > 0;) {
      n += static_cast<size_t>(r);
    }
    syscall(SYS_close, fd);
  }
  buf[n] = '\0';
  return buf;
}

// Calls `fn` with each line of `text` until it returns true.
template <class Fn>
void ForEachLine(const char* text, Fn fn) {
  for (const char* p = text; *p != '\0';) {
    const char* nl = strchr(p, '\n');
    std::string_view line(p, nl ? static_cast<size_t>(nl - p) : strlen(p));
    if (fn(line) || nl == nullptr) return;
    p = nl + 1;
  }
}

// The start of the mapping whose name is `name` in /proc/self/maps, or 0.
uint64_t StartOf(const char* maps, std::string_view name) {
  uint64_t start = 0;
  ForEachLine(maps, [&](std::string_view line) {
    if (!line.ends_with(name)) return false;
    start = strtoull(line.data(), nullptr, 16);
    return true;
  });
  return start;
}

// The permissions ("r--p") and, from smaps, the VmFlags line of the mapping at `start`.
std::string_view LineAt(const char* text, uint64_t start, std::string_view field) {
  char prefix[32];
  snprintf(prefix, sizeof(prefix), "%" PRIx64 "-", start);
  std::string_view found;
  bool in = false;
  ForEachLine(text, [&](std::string_view line) {
    if (line.starts_with(prefix)) {
      in = true;
      if (field.empty()) found = line;
    } else if (in && !line.empty() &&
               ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f'))) {
      in = false;  // the next mapping's header (field names start with a capital)
    } else if (in && line.starts_with(field)) {
      found = line;
    }
    return !found.empty();
  });
  return found;
}

bool Mapped(uint64_t addr, uint64_t len) {
  unsigned char vec[64];
  return syscall(SYS_mincore, addr, len, vec) == 0;
}

void CheckRegisters() {
  static const char* kNames[16] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                                   "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
  for (int i = 0; i < 16; ++i) CheckEq(g_landed_gpr[i], g_expect.gpr[i], kNames[i]);
  CheckEq(g_landed_flags & g_expect.flags_mask, g_expect.flags, "rflags");

  static const struct {
    size_t offset, size;
    int level;
    const char* name;
  } kVectors[] = {
      {0, 16, 0, "xmm0"}, {16, 32, 1, "ymm1"}, {48, 64, 2, "zmm2"}, {112, 64, 2, "zmm17"}};
  const auto* markers = reinterpret_cast<const unsigned char*>(&g_expect.markers);
  static const unsigned char kZero[64] = {};
  for (const auto& v : kVectors) {
    if (v.level > g_expect.vector_level) continue;
    const unsigned char* want = g_expect.vectors_restored ? markers + v.offset : kZero;
    uint64_t got_word, want_word;
    memcpy(&got_word, g_landed_vec + v.offset + v.size - 8, 8);
    memcpy(&want_word, want + v.size - 8, 8);
    Check(memcmp(g_landed_vec + v.offset, want, v.size) == 0, v.name, got_word, want_word);
  }
}

void CheckMemory() {
  const char* maps = ReadProc("/proc/self/smaps");
  std::string_view header = LineAt(maps, g_expect.premap_dest, "");
  Check(header.size() > 30 && header.substr(header.find(' ') + 1, 4) == "r--p",
        "moved VMA is read-only private");
  std::string_view vmflags = LineAt(maps, g_expect.premap_dest, "VmFlags:");
  Check(vmflags.find(" dd") != std::string_view::npos, "moved VMA has MADV_DONTDUMP");
  const auto* moved = reinterpret_cast<const unsigned char*>(g_expect.premap_dest);
  bool same = true;
  for (uint64_t i = 0; i < g_expect.premap_len; ++i)
    same &= moved[i] == static_cast<uint8_t>(i * 7 + 3);
  Check(same, "moved VMA keeps its contents");
  Check(!Mapped(g_expect.premap_src, 4096), "premap source is gone");

  auto* anon = reinterpret_cast<unsigned char*>(g_expect.anon);
  bool zero = true;
  for (uint64_t i = 0; i < g_expect.anon_len; ++i) zero &= anon[i] == 0;
  Check(zero, "fresh anonymous VMA is zero");
  anon[17] = 0x5a;
  Check(anon[17] == 0x5a, "fresh anonymous VMA is writable");

  const auto* shared = reinterpret_cast<const char*>(g_expect.file_shared);
  const auto* priv = reinterpret_cast<const char*>(g_expect.file_private);
  Check(shared[0] == 'B' && shared[4095] == 'B', "shared file VMA maps page 1", shared[0], 'B');
  Check(priv[0] == 'A' && priv[4095] == 'A', "private file VMA maps page 0", priv[0], 'A');
  Check(syscall(SYS_fcntl, g_expect.file_fd, F_GETFD) == -1 && errno == EBADF,
        "the file VMAs' fd is closed");
  Check(!Mapped(g_expect.unmapped, g_expect.unmapped_len), "unmap range is gone");
}

void CheckSignalsAndTimers() {
  const struct {
    int sig;
    const restorer_sigaction* want;
  } kActions[] = {{SIGUSR1, &g_expect.usr1}, {SIGUSR2, &g_expect.usr2}};
  for (const auto& a : kActions) {
    restorer_sigaction got{};
    syscall(SYS_rt_sigaction, a.sig, nullptr, &got, 8);
    CheckEq(got.handler, a.want->handler, "sigaction handler");
    CheckEq(got.flags, a.want->flags, "sigaction flags");
    CheckEq(got.restorer, a.want->restorer, "sigaction restorer");
    CheckEq(got.mask, a.want->mask, "sigaction mask");
  }
  uint64_t mask = 0;
  syscall(SYS_rt_sigprocmask, SIG_BLOCK, nullptr, &mask, 8);
  CheckEq(mask, g_expect.sigmask, "blocked signals");

  itimerval real{}, prof{};
  syscall(SYS_getitimer, ITIMER_REAL, &real);
  syscall(SYS_getitimer, ITIMER_PROF, &prof);
  Check(real.it_value.tv_sec <= static_cast<long>(g_expect.real_timer_sec) &&
            real.it_value.tv_sec + 5 > static_cast<long>(g_expect.real_timer_sec),
        "ITIMER_REAL", real.it_value.tv_sec, g_expect.real_timer_sec);
  CheckEq(prof.it_interval.tv_sec, g_expect.prof_interval_sec, "ITIMER_PROF interval");
}

void CheckTaskState() {
  CheckEq(syscall(SYS_brk, 0), g_expect.brk, "brk (PR_SET_MM_MAP)");
  const char* auxv = ReadProc("/proc/self/auxv");  // binary: read the pairs, not lines
  uint64_t flags = ~0ull;
  for (const uint64_t* p = reinterpret_cast<const uint64_t*>(auxv); p[0] != 0; p += 2) {
    if (p[0] == 8 /* AT_FLAGS */) flags = p[1];
  }
  CheckEq(flags, g_expect.auxv_flags, "auxv AT_FLAGS (PR_SET_MM_MAP)");

  uint64_t head = 0;
  size_t len = 0;
  syscall(SYS_get_robust_list, 0, &head, &len);
  CheckEq(head, g_expect.robust_head, "robust list");
  CheckEq(len, 24, "robust list length");
  uint64_t tid_address = 0;
  syscall(SYS_prctl, PR_GET_TID_ADDRESS, &tid_address, 0, 0, 0);
  CheckEq(tid_address, g_expect.tid_address, "clear_child_tid address");
  uint64_t fs = 0, gs = 0;
  syscall(SYS_arch_prctl, ARCH_GET_FS, &fs);
  syscall(SYS_arch_prctl, ARCH_GET_GS, &gs);
  CheckEq(fs, g_expect.fs_base, "fs base");
  CheckEq(gs, g_expect.gs_base, "gs base");

  // Registering the same area again answers EBUSY only when it is the one registered.
  long r = syscall(SYS_rseq, g_expect.task_rseq, 32, 0, RSEQ_SIG);
  Check(r == -1 && errno == EBUSY, "the task's rseq area is registered", errno, EBUSY);
  const auto* rs = reinterpret_cast<const volatile struct rseq*>(g_expect.task_rseq);
  Check(rs->cpu_id != static_cast<uint32_t>(RSEQ_CPU_ID_UNINITIALIZED),
        "the kernel updates the task's rseq area");

  Check(syscall(SYS_fcntl, g_expect.status_fd, F_GETFD) == -1 && errno == EBADF,
        "the status pipe is closed");
}

void CheckVdso() {
  if (g_expect.vdso == 0) return;
  const char* maps = ReadProc("/proc/self/maps");
  CheckEq(StartOf(maps, "[vdso]"), g_expect.vdso, "[vdso] address");
  CheckEq(StartOf(maps, "[vvar]"), g_expect.vvar, "[vvar] address");
  if (g_expect.vvar_vclock != 0) {
    CheckEq(StartOf(maps, "[vvar_vclock]"), g_expect.vvar_vclock, "[vvar_vclock] address");
  }
  if (g_expect.vdso_clock_gettime != 0) {
    // The moved vDSO code must still find its data pages.
    auto clock = reinterpret_cast<int (*)(clockid_t, timespec*)>(g_expect.vdso_clock_gettime);
    timespec via_vdso{}, via_syscall{};
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &via_syscall);
    int rc = clock(CLOCK_MONOTONIC, &via_vdso);
    CheckEq(rc, 0, "clock_gettime through the moved vDSO");
    Check(via_vdso.tv_sec - via_syscall.tv_sec < 2, "the moved vDSO reads the right clock",
          via_vdso.tv_sec, via_syscall.tv_sec);
  }
}

}  // namespace

void LandingCheck() {
  CheckRegisters();
  CheckMemory();
  CheckSignalsAndTimers();
  CheckTaskState();
  CheckVdso();
  syscall(SYS_exit_group, failures == 0 ? crpp::testing::kLandedOk : 1);
  __builtin_unreachable();
}
