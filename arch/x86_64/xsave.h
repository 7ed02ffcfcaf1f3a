// The size and layout of the xsave area on this CPU, read from CPUID leaf
// 0xD and XCR0. Dump buffers for a task's extended state must use this size:
// it varies by CPU (576 bytes with x87/SSE only, several KiB with AVX-512 or
// AMX), so it is never a compile-time constant.
#ifndef CRPP_ARCH_X86_64_XSAVE_H_
#define CRPP_ARCH_X86_64_XSAVE_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace crpp::arch {

// Legacy FXSAVE area (512 bytes) plus the XSAVE header (64 bytes).
inline constexpr uint32_t kXsaveMinSize = 576;

struct XsaveLayout {
  uint32_t enabled_size = 0;  // bytes for the features enabled in XCR0
  uint32_t max_size = 0;      // bytes for every feature the CPU supports
  uint64_t xcr0 = 0;          // the enabled feature mask
};

// Fails when the CPU or the OS does not provide XSAVE.
absl::StatusOr<XsaveLayout> ReadXsaveLayout();

}  // namespace crpp::arch

#endif  // CRPP_ARCH_X86_64_XSAVE_H_
