// What pdum-criu prints: command lines a shell can paste, log tails, and
// failures (the message, a hint, the log's last lines) with criu's exit code.
#ifndef CRPP_TOOLS_PDUM_CONSOLE_H_
#define CRPP_TOOLS_PDUM_CONSOLE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace crpp::pdum {

// criu exits 1 on any failure; pdum-criu passes criu's code on.
inline constexpr int kFailureExit = 1;
// A command line that cannot be understood (as Typer's usage errors).
inline constexpr int kUsageExit = 2;

// `word` quoted for a POSIX shell when it needs it.
std::string ShellQuote(std::string_view word);
// The words quoted and joined by spaces.
std::string ShellJoin(const std::vector<std::string>& words);

// "Log tail:" and the last `lines` lines of `log_path`, indented; nothing
// when the log is empty or missing.
void PrintLogTail(const std::string& log_path, int lines);

// Prints "<what> failed (exit 1): <message>", then `hint` when not empty,
// then the log's last 10 lines (when `show_tail`; else only where the log
// is) to stderr. Returns kFailureExit.
int Failed(std::string_view what, const absl::Status& status, const std::string& hint,
           const std::string& log_path, bool show_tail);

// Prints "Error: <message>" and "Try 'pdum-criu COMMAND --help'." to
// stderr. Returns kUsageExit.
int UsageError(std::string_view command, const absl::Status& status);

}  // namespace crpp::pdum

#endif  // CRPP_TOOLS_PDUM_CONSOLE_H_
