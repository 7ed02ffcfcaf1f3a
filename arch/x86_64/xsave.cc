#include "arch/x86_64/xsave.h"

#include <cpuid.h>

#include "absl/strings/str_format.h"

namespace crpp::arch {

namespace {

absl::StatusOr<XsaveLayout> QueryXsaveLayout() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return absl::UnavailableError("no CPUID leaf 1");
  if ((c & bit_OSXSAVE) == 0) {
    return absl::UnavailableError("XSAVE is not enabled by the OS (no OSXSAVE)");
  }
  if (__get_cpuid_max(0, nullptr) < 0xd) return absl::UnavailableError("no CPUID leaf 0xD");
  __cpuid_count(0xd, 0, a, b, c, d);
  XsaveLayout layout;
  layout.enabled_size = b;
  layout.max_size = c;
  uint32_t lo = 0, hi = 0;
  // xgetbv is allowed in user mode once OSXSAVE is set (checked above).
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  layout.xcr0 = (uint64_t{hi} << 32) | lo;
  if (layout.enabled_size < kXsaveMinSize) {
    return absl::DataLossError(
        absl::StrFormat("CPUID 0xD reports only %d bytes of xsave area", layout.enabled_size));
  }
  return layout;
}

}  // namespace

absl::StatusOr<XsaveLayout> ReadXsaveLayout() {
  // CPUID traps to the hypervisor on a VM: asked once (it cannot change
  // while we run).
  static const absl::StatusOr<XsaveLayout> layout = QueryXsaveLayout();
  return layout;
}

}  // namespace crpp::arch
