// The state the assembly loop of registers_loop.S holds in registers across
// a checkpoint (random patterns in vector, general-purpose, opmask and x87
// registers, MXCSR and the x87 control word) and the checks of what it found
// afterwards: shared by the registers program and the threads program (one
// state per thread).
#ifndef CRPP_TESTS_E2E_PROGRAMS_REGISTERS_STATE_H_
#define CRPP_TESTS_E2E_PROGRAMS_REGISTERS_STATE_H_

#include <time.h>

#include <csignal>
#include <cstdint>
#include <string>

#include "tests/e2e/programs/common.h"

namespace crpp::e2e {

inline constexpr int kVectors = 24;
inline constexpr int kGprs = 8;
inline constexpr int kMasks = 7;

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

// Fills `state` with random patterns from `random`, for the best vector
// level (CRPP_E2E_REGISTERS_LEVEL may lower it), a 10 ms period, and the
// loop's stop flag; the loop writes "ready\n" to `report_fd` once.
void InitRegisterState(RegisterState& state, Random& random, volatile sig_atomic_t* stop,
                       int report_fd);

// Checks what the loop saw and ended with; `who` prefixes each failure.
void CheckRegisterState(const RegisterState& state, const std::string& who, Verdict& v);

// "level=avx2 iterations=N ymm8..ymm15 ..." for the verdict's notes.
std::string DescribeRegisterState(const RegisterState& state);

}  // namespace crpp::e2e

// The loop (registers_loop.S): returns once *state->stop is set.
extern "C" void RegistersLoop(crpp::e2e::RegisterState* state);

#endif  // CRPP_TESTS_E2E_PROGRAMS_REGISTERS_STATE_H_
