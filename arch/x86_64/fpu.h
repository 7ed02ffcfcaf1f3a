// The FPU/SSE/AVX state of a task between the kernel's xsave layout (what
// PTRACE_GETREGSET NT_X86_XSTATE returns and a signal frame holds) and
// CRIU's user_x86_fpregs_entry, component by component, so that images stay
// readable by CRIU and CPUs with different xsave layouts.
#ifndef CRPP_ARCH_X86_64_FPU_H_
#define CRPP_ARCH_X86_64_FPU_H_

#include <string>

#include "absl/status/statusor.h"
#include "core-x86.pb.h"

namespace crpp::arch {

// `xsave` is a standard-format (non-compacted) xsave image.
absl::Status XsaveToFpregs(const std::string& xsave, criu::user_x86_fpregs_entry& out);

// Builds a standard-format xsave image of `size` bytes for this CPU. Fails if
// the image holds state of a component this CPU does not have enabled.
absl::StatusOr<std::string> FpregsToXsave(const criu::user_x86_fpregs_entry& in, size_t size,
                                          uint64_t xcr0);

}  // namespace crpp::arch

#endif  // CRPP_ARCH_X86_64_FPU_H_
