// Thaw's new stdio: which of the frozen root's stdin, stdout and stderr were
// pipes to a process outside the tree, and new pipes to stand for them.
#ifndef CRPP_API_STDIO_PIPES_H_
#define CRPP_API_STDIO_PIPES_H_

#include <array>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/restore/restore.h"

namespace crpp::api_internal {

struct StdioPipes {
  // For RestoreRequest::inherit_fds: the tasks' ends, "pipe:[INO]" each.
  std::vector<InheritFd> inherit;
  // The caller's ends by stdio number (-1: not a pipe); one fd twice when two
  // stdio fds were one pipe.
  std::array<int, 3> caller = {-1, -1, -1};
  StdioPipes() = default;
  StdioPipes(StdioPipes&&) noexcept;
  StdioPipes& operator=(StdioPipes&&) noexcept;
  StdioPipes(const StdioPipes&) = delete;
  ~StdioPipes();  // closes what was not taken
  void CloseTaskEnds();
  void Close();  // both ends
};

// Reads the root's fds 0-2 from the images in `dir` and makes a pipe for
// each pipe among them whose other end no task of the tree holds.
absl::StatusOr<StdioPipes> MakeStdioPipes(const std::string& dir);

}  // namespace crpp::api_internal

#endif  // CRPP_API_STDIO_PIPES_H_
