// What the infection tests share: a view of a task from outside that must
// not change (its memory map, signal masks and open fds), the pages of a task
// worth dumping, and the way to read them without a parasite.
#ifndef CRPP_TESTS_INFECT_INFECT_TESTING_H_
#define CRPP_TESTS_INFECT_INFECT_TESTING_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/infect/parasite.h"

namespace crpp::infect::testing {

// fd number -> what /proc/PID/fd/N links to.
absl::StatusOr<std::map<int, std::string>> Fds(pid_t pid);

// The harness's OutsideView (maps, SigPnd, ShdPnd, SigBlk, SigIgn, SigCgt,
// TracerPid, Threads) plus the fds.
absl::StatusOr<std::string> FullView(pid_t pid);
// OK if FullView(pid) is `before`, else the differences.
absl::Status ExpectFullView(pid_t pid, const std::string& before);

// The pages a dump stores for `pid`: the present (or swapped) pages of its
// readable, private, anonymous mappings, as runs of consecutive pages.
absl::StatusOr<std::vector<PageRange>> AnonymousPages(pid_t pid);

uint64_t TotalBytes(absl::Span<const PageRange> ranges);

// The way memory_dump.cc reads pages today: process_vm_readv into a buffer
// of 4 MiB, then write() to `out_fd`.
absl::Status ReadvPages(pid_t pid, absl::Span<const PageRange> ranges, int out_fd);

}  // namespace crpp::infect::testing

#endif  // CRPP_TESTS_INFECT_INFECT_TESTING_H_
