// Logging with criu's verbosity levels.
//
//   -v0  nothing but what a command prints on purpose
//   -v1  errors
//   -v2  + warnings (the default), and a summary of what happened
//   -v3  + informational messages, with timestamps
//   -v4  + debug messages
//
// Messages go to one sink: stderr, or the file given with -o (opened by the
// command, relative to -W/-D). Errors are also kept so that a command can
// print a one-line summary on stderr when the log went to a file.
#ifndef CRPP_CORE_LOG_H_
#define CRPP_CORE_LOG_H_

#include <cstdio>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace crpp::log {

enum class Level : int { kMsg = 0, kError = 1, kWarn = 2, kInfo = 3, kDebug = 4 };

inline constexpr int kDefaultVerbosity = 2;

// Sets the verbosity (clamped to 0..4).
void SetVerbosity(int level);
int Verbosity();

// Sends the log to `path` (created, and truncated unless `append`). Until
// then, and after ToStderr(), messages go to stderr.
absl::Status ToFile(const std::string& path, bool append = false);
// `close_fd` false leaves the log file's fd open: in a process whose fd table
// another process shares and still logs through (that one closes it).
void ToStderr(bool close_fd = true);
// True when the log is a file, i.e. errors do not reach the terminal by themselves.
bool LogsToFile();
const std::string& LogPath();

// Moves the log's file descriptor to the lowest free number >= min_fd (a
// restored task needs the low numbers for its own files; stderr itself is
// copied there). Returns the fd, -1 if it cannot. A log fd at min_fd or above
// already stays where it is: a process sharing its fd table (restore's
// clone(CLONE_FILES) children) has it at the same number, and moving it
// would close that.
int MoveFdAbove(int min_fd);

bool Enabled(Level level);
void Write(Level level, std::string_view message);

template <typename... Args>
void Error(const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (Enabled(Level::kError)) Write(Level::kError, absl::StrFormat(format, args...));
}
template <typename... Args>
void Warn(const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (Enabled(Level::kWarn)) Write(Level::kWarn, absl::StrFormat(format, args...));
}
template <typename... Args>
void Info(const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (Enabled(Level::kInfo)) Write(Level::kInfo, absl::StrFormat(format, args...));
}
template <typename... Args>
void Debug(const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, absl::StrFormat(format, args...));
}

// Logs a failed status as an error and returns it unchanged, so call sites can
// write `return log::Failed(status);`.
absl::Status Failed(absl::Status status);

}  // namespace crpp::log

#endif  // CRPP_CORE_LOG_H_
