// registers: random patterns held in registers across the checkpoint by the
// assembly loop of registers_loop.S: ymm8..15 with AVX2 (xmm8..15 without),
// zmm8..31 and k1..k7 when the CPU has AVX-512 (cpuid + xgetbv at run time),
// rbx r8 r9 r10 r12..r15, two x87 stack values, and non-default MXCSR
// (round toward zero, DAZ) and x87 control word (single precision, truncate).
// The loop re-checks them all every 10 ms.
// Verdict: no check ever failed, and the registers hold the patterns at the end.
//
// CRPP_E2E_REGISTERS_LEVEL=sse|avx2 in the environment limits the vector
// registers used, so that every path can be run on an AVX-512 machine.
#include <cpuid.h>
#include <unistd.h>

#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/e2e/programs/common.h"
#include "tests/e2e/programs/registers_layout.h"

namespace {

constexpr int kVectors = 24;
constexpr int kGprs = 8;
constexpr int kMasks = 7;
constexpr uint32_t kMxcsr = 0x7fc0;  // all exceptions masked, round toward zero, DAZ
constexpr uint16_t kFcw = 0x0c7f;    // all exceptions masked, single precision, truncate
constexpr const char* kGprNames[kGprs] = {"rbx", "r8", "r9", "r10", "r12", "r13", "r14", "r15"};
constexpr const char* kLevelNames[] = {"sse", "avx2", "avx512"};

struct alignas(64) RegisterState {
  uint8_t patterns[kVectors][64];
  uint8_t final[kVectors][64];
  uint64_t gpr[kGprs];
  uint64_t final_gpr[kGprs];
  uint64_t kmask[8];  // k1..k7, then padding
  uint64_t final_kmask[8];
  uint8_t x87[2][16];
  uint8_t final_x87[2][16];
  struct timespec period;
  volatile sig_atomic_t* stop;
  uint64_t iterations;
  uint32_t first_bad;
  uint32_t pad0;
  uint64_t first_bad_iteration;
  uint32_t mxcsr;
  uint16_t fcw;
  uint16_t pad1;
  uint32_t final_mxcsr;
  uint16_t final_fcw;
  uint16_t pad2;
  uint32_t saved_mxcsr;
  uint16_t saved_fcw;
  uint16_t pad3;
  uint64_t scratch;
  uint32_t level;
  int32_t report_fd;
  int64_t ready_result;
  char ready_text[8];
};

#define CHECK_OFFSET(field, offset) \
  static_assert(offsetof(RegisterState, field) == (offset), #field " moved")
CHECK_OFFSET(patterns, REG_PATTERNS);
CHECK_OFFSET(final, REG_FINAL);
CHECK_OFFSET(gpr, REG_GPR);
CHECK_OFFSET(final_gpr, REG_FINAL_GPR);
CHECK_OFFSET(kmask, REG_KMASK);
CHECK_OFFSET(final_kmask, REG_FINAL_KMASK);
CHECK_OFFSET(x87, REG_X87);
CHECK_OFFSET(final_x87, REG_FINAL_X87);
CHECK_OFFSET(period, REG_TIMESPEC);
CHECK_OFFSET(stop, REG_STOP);
CHECK_OFFSET(iterations, REG_ITERATIONS);
CHECK_OFFSET(first_bad, REG_FIRST_BAD);
CHECK_OFFSET(first_bad_iteration, REG_FIRST_BAD_ITER);
CHECK_OFFSET(mxcsr, REG_MXCSR);
CHECK_OFFSET(fcw, REG_FCW);
CHECK_OFFSET(final_mxcsr, REG_FINAL_MXCSR);
CHECK_OFFSET(final_fcw, REG_FINAL_FCW);
CHECK_OFFSET(saved_mxcsr, REG_SAVED_MXCSR);
CHECK_OFFSET(saved_fcw, REG_SAVED_FCW);
CHECK_OFFSET(scratch, REG_SCRATCH);
CHECK_OFFSET(level, REG_LEVEL);
CHECK_OFFSET(report_fd, REG_REPORT_FD);
CHECK_OFFSET(ready_result, REG_READY_RESULT);
CHECK_OFFSET(ready_text, REG_READY_TEXT);
#undef CHECK_OFFSET

RegisterState g_state;

// The best level the CPU and the kernel (XCR0) both enable.
uint32_t DetectLevel() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  const bool osxsave = c & (1u << 27);
  const bool avx = c & (1u << 28);
  if (!osxsave || !avx) return 0;
  uint32_t lo = 0, hi = 0;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const uint64_t xcr0 = (uint64_t{hi} << 32) | lo;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
  const bool avx2 = b & (1u << 5);
  const bool avx512f = b & (1u << 16);
  const bool avx512bw = b & (1u << 30);  // 64-bit opmask registers
  if (avx512f && avx512bw && (xcr0 & 0xe6) == 0xe6) return 2;
  if (avx2 && (xcr0 & 0x6) == 0x6) return 1;
  return 0;
}

uint32_t ChooseLevel() {
  uint32_t level = DetectLevel();
  const char* forced = getenv("CRPP_E2E_REGISTERS_LEVEL");
  if (forced == nullptr) return level;
  for (uint32_t l = 0; l < 3; ++l) {
    if (strcmp(forced, kLevelNames[l]) == 0) return l < level ? l : level;
  }
  fprintf(stderr, "registers: unknown CRPP_E2E_REGISTERS_LEVEL %s\n", forced);
  exit(2);
}

int VectorCount(uint32_t level) { return level == 2 ? kVectors : 8; }
size_t VectorBytes(uint32_t level) { return size_t{16} << level; }

std::string VectorName(uint32_t level, int index) {
  static constexpr const char* kPrefix[] = {"xmm", "ymm", "zmm"};
  return kPrefix[level] + std::to_string(8 + index);
}

std::string BadName(uint32_t level, uint32_t code) {
  if (code >= 1 && code <= kVectors) return VectorName(level, static_cast<int>(code - 1));
  if (code >= REG_BAD_GPR && code < REG_BAD_GPR + kGprs) return kGprNames[code - REG_BAD_GPR];
  if (code > REG_BAD_KMASK && code <= REG_BAD_KMASK + kMasks) {
    return "k" + std::to_string(code - REG_BAD_KMASK);
  }
  if (code == REG_BAD_MXCSR) return "mxcsr";
  if (code == REG_BAD_FCW) return "x87 control word";
  if (code == REG_BAD_ST0) return "st(0)";
  if (code == REG_BAD_ST1) return "st(1)";
  return "code " + std::to_string(code);
}

void Fill(crpp::e2e::Random& random) {
  for (auto& pattern : g_state.patterns) {
    for (size_t i = 0; i < sizeof(pattern); i += 8) {
      uint64_t word = random.Next();
      memcpy(pattern + i, &word, 8);
    }
  }
  for (uint64_t& g : g_state.gpr) g = random.Next();
  for (int m = 0; m < kMasks; ++m) g_state.kmask[m] = random.Next();
  for (auto& slot : g_state.x87) {
    long double value = static_cast<long double>(random.Next() | 1) / 3.0L;
    memcpy(slot, &value, 10);
  }
}

void Compare(crpp::e2e::Verdict& v) {
  const uint32_t level = g_state.level;
  for (int i = 0; i < VectorCount(level); ++i) {
    const size_t n = VectorBytes(level);
    for (size_t at = 0; at < n; at += 8) {
      uint64_t got = 0, want = 0;
      memcpy(&got, g_state.final[i] + at, 8);
      memcpy(&want, g_state.patterns[i] + at, 8);
      if (!v.Expect(got == want, "%s bytes %zu..%zu are %016" PRIx64 ", want %016" PRIx64,
                    VectorName(level, i).c_str(), at, at + 7, got, want)) {
        break;
      }
    }
  }
  for (int j = 0; j < kGprs; ++j) {
    v.Expect(g_state.final_gpr[j] == g_state.gpr[j], "%s is %016" PRIx64 ", want %016" PRIx64,
             kGprNames[j], g_state.final_gpr[j], g_state.gpr[j]);
  }
  if (level == 2) {
    for (int m = 0; m < kMasks; ++m) {
      v.Expect(g_state.final_kmask[m] == g_state.kmask[m],
               "k%d is %016" PRIx64 ", want %016" PRIx64, m + 1, g_state.final_kmask[m],
               g_state.kmask[m]);
    }
  }
  v.Expect(g_state.final_mxcsr == kMxcsr, "mxcsr is %#x, want %#x", g_state.final_mxcsr, kMxcsr);
  v.Expect(g_state.final_fcw == kFcw, "x87 control word is %#x, want %#x", g_state.final_fcw, kFcw);
  v.Expect(memcmp(g_state.final_x87[1], g_state.x87[1], 10) == 0, "st(0) changed");
  v.Expect(memcmp(g_state.final_x87[0], g_state.x87[0], 10) == 0, "st(1) changed");
}

}  // namespace

extern "C" void RegistersLoop(RegisterState* state);

int main(int argc, char** argv) {
  crpp::e2e::Setup(argc, argv, "registers");
  crpp::e2e::Random random(crpp::e2e::UrandomSeed());
  Fill(random);
  g_state.level = ChooseLevel();
  g_state.period = {0, 10 * 1000 * 1000};
  g_state.stop = &crpp::e2e::g_verify_requested;
  g_state.mxcsr = kMxcsr;
  g_state.fcw = kFcw;
  g_state.report_fd = crpp::e2e::ReportFd();
  memcpy(g_state.ready_text, "ready\n", 6);

  RegistersLoop(&g_state);  // writes "ready", returns after SIGUSR1

  crpp::e2e::Verdict v;
  const uint32_t level = g_state.level;
  v.Expect(g_state.ready_result == 6, "writing ready returned %" PRId64, g_state.ready_result);
  v.Expect(g_state.iterations > 0, "the loop never slept");
  v.Expect(g_state.first_bad == 0, "%s changed, first seen at iteration %" PRIu64,
           BadName(level, g_state.first_bad).c_str(), g_state.first_bad_iteration);
  Compare(v);
  v.Note("level=%s iterations=%" PRIu64 " %s..%s%s %d gprs mxcsr=%#x fcw=%#x st(0) st(1)",
         kLevelNames[level], g_state.iterations, VectorName(level, 0).c_str(),
         VectorName(level, VectorCount(level) - 1).c_str(), level == 2 ? " k1..k7" : "", kGprs,
         kMxcsr, kFcw);
  v.Finish();
}
