// What Freeze and Thaw share: the capability check and the log's scope.
#ifndef CRPP_API_INTERNAL_H_
#define CRPP_API_INTERNAL_H_

#include <string>

#include "absl/status/status.h"

namespace crpp::api_internal {

// OK if this process may checkpoint or restore: root, or CAP_SYS_PTRACE and
// CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) in its effective set. Else an
// error naming what is missing and how to get it, for `what` ("Freeze", ...).
absl::Status RequireCaps(const std::string& what);

// `path` made absolute against `dir` ("" = dir/default_name).
std::string LogPathIn(const std::string& dir, const std::string& path,
                      const std::string& default_name);

// Sends the engine's log to a file at a verbosity for the time of a call,
// then back where it went before (appending to a previous file).
class LogScope {
 public:
  LogScope() = default;
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;
  absl::Status Open(const std::string& path, int verbosity);

 private:
  bool open_ = false;
  bool had_file_ = false;
  std::string previous_path_;
  int previous_verbosity_ = 0;
};

}  // namespace crpp::api_internal

#endif  // CRPP_API_INTERNAL_H_
