#include "tests/e2e/programs/registers_state.h"

#include <cpuid.h>

#include <cinttypes>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "tests/e2e/programs/registers_layout.h"

namespace crpp::e2e {
namespace {

constexpr uint32_t kMxcsr = 0x7fc0;  // all exceptions masked, round toward zero, DAZ
constexpr uint16_t kFcw = 0x0c7f;    // all exceptions masked, single precision, truncate
constexpr const char* kGprNames[kGprs] = {"rbx", "r8", "r9", "r10", "r12", "r13", "r14", "r15"};
constexpr const char* kLevelNames[] = {"sse", "avx2", "avx512"};

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

void Fill(RegisterState& s, Random& random) {
  for (auto& pattern : s.patterns) {
    for (size_t i = 0; i < sizeof(pattern); i += 8) {
      uint64_t word = random.Next();
      memcpy(pattern + i, &word, 8);
    }
  }
  for (uint64_t& g : s.gpr) g = random.Next();
  for (int m = 0; m < kMasks; ++m) s.kmask[m] = random.Next();
  for (auto& slot : s.x87) {
    long double value = static_cast<long double>(random.Next() | 1) / 3.0L;
    memcpy(slot, &value, 10);
  }
}

void Compare(const RegisterState& s, const std::string& who, Verdict& v) {
  const char* w = who.c_str();
  const uint32_t level = s.level;
  for (int i = 0; i < VectorCount(level); ++i) {
    const size_t n = VectorBytes(level);
    for (size_t at = 0; at < n; at += 8) {
      uint64_t got = 0, want = 0;
      memcpy(&got, s.final[i] + at, 8);
      memcpy(&want, s.patterns[i] + at, 8);
      if (!v.Expect(got == want, "%s%s bytes %zu..%zu are %016" PRIx64 ", want %016" PRIx64, w,
                    VectorName(level, i).c_str(), at, at + 7, got, want)) {
        break;
      }
    }
  }
  for (int j = 0; j < kGprs; ++j) {
    v.Expect(s.final_gpr[j] == s.gpr[j], "%s%s is %016" PRIx64 ", want %016" PRIx64, w,
             kGprNames[j], s.final_gpr[j], s.gpr[j]);
  }
  if (level == 2) {
    for (int m = 0; m < kMasks; ++m) {
      v.Expect(s.final_kmask[m] == s.kmask[m], "%sk%d is %016" PRIx64 ", want %016" PRIx64, w,
               m + 1, s.final_kmask[m], s.kmask[m]);
    }
  }
  v.Expect(s.final_mxcsr == kMxcsr, "%smxcsr is %#x, want %#x", w, s.final_mxcsr, kMxcsr);
  v.Expect(s.final_fcw == kFcw, "%sx87 control word is %#x, want %#x", w, s.final_fcw, kFcw);
  v.Expect(memcmp(s.final_x87[1], s.x87[1], 10) == 0, "%sst(0) changed", w);
  v.Expect(memcmp(s.final_x87[0], s.x87[0], 10) == 0, "%sst(1) changed", w);
}

}  // namespace

void InitRegisterState(RegisterState& state, Random& random, volatile sig_atomic_t* stop,
                       int report_fd) {
  Fill(state, random);
  state.level = ChooseLevel();
  state.period = {0, 10 * 1000 * 1000};
  state.stop = stop;
  state.mxcsr = kMxcsr;
  state.fcw = kFcw;
  state.report_fd = report_fd;
  memcpy(state.ready_text, "ready\n", 6);
}

void CheckRegisterState(const RegisterState& state, const std::string& who, Verdict& v) {
  v.Expect(state.ready_result == 6, "%swriting ready returned %" PRId64, who.c_str(),
           state.ready_result);
  v.Expect(state.iterations > 0, "%sthe loop never slept", who.c_str());
  v.Expect(state.first_bad == 0, "%s%s changed, first seen at iteration %" PRIu64, who.c_str(),
           BadName(state.level, state.first_bad).c_str(), state.first_bad_iteration);
  Compare(state, who, v);
}

std::string DescribeRegisterState(const RegisterState& state) {
  const uint32_t level = state.level;
  char buf[256];
  snprintf(buf, sizeof buf, "level=%s iterations=%" PRIu64 " %s..%s%s %d gprs mxcsr=%#x fcw=%#x",
           kLevelNames[level], state.iterations, VectorName(level, 0).c_str(),
           VectorName(level, VectorCount(level) - 1).c_str(), level == 2 ? " k1..k7" : "", kGprs,
           kMxcsr, kFcw);
  return buf;
}

}  // namespace crpp::e2e
