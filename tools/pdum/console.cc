#include "tools/pdum/console.h"

#include <cstdio>

#include "absl/strings/str_format.h"
#include "tools/common/files.h"

namespace crpp::pdum {

std::string ShellQuote(std::string_view word) {
  constexpr std::string_view kPlain =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=,+@%-";
  if (!word.empty() && word.find_first_not_of(kPlain) == std::string_view::npos) {
    return std::string(word);
  }
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string ShellJoin(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out += ' ';
    out += ShellQuote(w);
  }
  return out;
}

void PrintLogTail(const std::string& log_path, int lines) {
  std::string tail = tools::TailLines(log_path, lines, "  ");
  if (tail.empty()) return;
  printf("Log tail (%s):\n%s", log_path.c_str(), tail.c_str());
  fflush(stdout);
}

int Failed(std::string_view what, const absl::Status& status, const std::string& hint,
           const std::string& log_path, bool show_tail) {
  fflush(stdout);
  fprintf(stderr, "%s failed (exit %d): %s\n", std::string(what).c_str(), kFailureExit,
          std::string(status.message()).c_str());
  if (!hint.empty()) fprintf(stderr, "Hint: %s\n", hint.c_str());
  if (!log_path.empty()) {
    std::string tail = show_tail ? tools::TailLines(log_path, 10, "  ") : "";
    if (!tail.empty()) {
      fprintf(stderr, "Log tail (%s):\n%s", log_path.c_str(), tail.c_str());
    } else {
      fprintf(stderr, "Log: %s\n", log_path.c_str());
    }
  }
  fflush(stderr);
  return kFailureExit;
}

int UsageError(std::string_view command, const absl::Status& status) {
  fprintf(stderr, "Error: %s\nTry 'pdum-criu %s --help'.\n", std::string(status.message()).c_str(),
          std::string(command).c_str());
  return kUsageExit;
}

}  // namespace crpp::pdum
