// Where a test task "resumes" after the restorer's rt_sigreturn: an asm stub
// that records every register the frame set, then C++ code that checks them
// and everything else the restorer was asked to do, from inside the task,
// and exits with kLandedOk when all is as expected.
//
// The landing code runs in an address space the restorer rebuilt (the vDSO
// may have moved, glibc's rseq area is unregistered), so it sticks to raw
// syscalls and memory it was told about.
#ifndef CRPP_TESTS_RESTORER_LANDING_H_
#define CRPP_TESTS_RESTORER_LANDING_H_

#include <cstdint>

#include "restorer/restorer_args.h"

namespace crpp::testing {

inline constexpr int kLandedOk = 42;

// Marker values loaded into vector registers before the xsave.
struct VectorMarkers {
  unsigned char xmm0[16];
  unsigned char ymm1[32];
  unsigned char zmm2[64];
  unsigned char zmm17[64];  // one of the upper 16 registers (Hi16_ZMM state)
};

enum VectorLevel : int { kSse = 0, kAvx = 1, kAvx512 = 2 };

struct LandingExpect {
  // rax rbx rcx rdx rsi rdi rbp rsp r8 .. r15
  uint64_t gpr[16];
  uint64_t flags_mask, flags;  // rflags bits the frame sets, and their values
  int vector_level;
  bool vectors_restored;  // false: no fpstate, so the registers are in init state (zero)
  VectorMarkers markers;

  uint64_t premap_src, premap_dest, premap_len;  // moved, read-only, MADV_DONTDUMP
  uint64_t anon, anon_len;                       // fresh zero pages over old garbage
  uint64_t file_shared, file_private;            // one memfd, two VMAs, pages 1 and 0
  int file_fd;                                   // closed by the restorer
  uint64_t unmapped, unmapped_len;

  restorer_sigaction usr1, usr2;
  uint64_t sigmask;
  uint64_t real_timer_sec, prof_interval_sec;
  uint64_t brk, auxv_flags;
  uint64_t robust_head, tid_address, fs_base, gs_base;
  uint64_t task_rseq, engine_rseq;  // engine_rseq 0: glibc had none

  uint64_t vvar, vvar_vclock, vdso;  // 0: not checked
  uint64_t vdso_clock_gettime;       // the vDSO's function at its new address, or 0
  int status_fd;
};

extern "C" {
extern LandingExpect g_expect;
// How far the landing stub reads vector registers (a VectorLevel): reading
// zmm17 on a CPU without AVX-512 would fault.
extern int g_landing_vector_level;
// The address rt_sigreturn returns to (regs.ip).
void restorer_test_landing();
// Loads the markers into xmm0/ymm1/zmm2/zmm17 (as far as `level` goes) and
// XSAVEs the state components in `mask` to the 64-byte aligned `buf`.
void restorer_test_capture_xsave(void* buf, uint64_t mask, const VectorMarkers* markers, int level);
}

}  // namespace crpp::testing

#endif  // CRPP_TESTS_RESTORER_LANDING_H_
