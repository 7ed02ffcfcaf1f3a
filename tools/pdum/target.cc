#include "tools/pdum/target.h"

#include <dirent.h>
#include <regex.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "absl/strings/str_format.h"
#include "core/proc/proc.h"
#include "core/strings.h"

namespace crpp::pdum {
namespace {

// This process and every ancestor up to init.
std::set<pid_t> SelfAndAncestors() {
  std::set<pid_t> out;
  for (pid_t p = getpid(); p > 0 && out.insert(p).second;) {
    auto st = proc::ReadStat(p);
    if (!st.ok()) break;
    p = st->ppid;
  }
  return out;
}

std::vector<pid_t> AllPids() {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    pid_t pid = 0;
    if (ParseInt(std::string_view(e->d_name), pid) && pid > 0) out.push_back(pid);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

class Regex {
 public:
  ~Regex() {
    if (ok_) regfree(&re_);
  }
  absl::Status Compile(const std::string& pattern) {
    int err = regcomp(&re_, pattern.c_str(), REG_EXTENDED | REG_NOSUB);
    if (err != 0) {
      char why[256];
      regerror(err, &re_, why, sizeof why);
      return absl::InvalidArgumentError(
          absl::StrFormat("--pgrep '%s' is not a valid regular expression: %s", pattern, why));
    }
    ok_ = true;
    return absl::OkStatus();
  }
  bool Matches(const std::string& text) const {
    return regexec(&re_, text.c_str(), 0, nullptr, 0) == 0;
  }

 private:
  regex_t re_;
  bool ok_ = false;
};

}  // namespace

absl::StatusOr<std::vector<ProcessMatch>> MatchProcesses(const std::string& pattern) {
  if (pattern.empty()) return absl::InvalidArgumentError("--pgrep needs a non-empty pattern");
  Regex re;
  if (absl::Status s = re.Compile(pattern); !s.ok()) return s;
  const std::set<pid_t> skip = SelfAndAncestors();
  std::vector<ProcessMatch> out;
  for (pid_t pid : AllPids()) {
    if (skip.count(pid)) continue;
    auto raw = proc::ReadFile(absl::StrFormat("/proc/%d/cmdline", pid));
    if (!raw.ok() || raw->empty()) continue;  // gone, or a kernel thread or zombie
    std::string cmdline = *raw;
    while (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (re.Matches(cmdline)) out.push_back({pid, cmdline});
  }
  return out;
}

absl::StatusOr<pid_t> ResolveTarget(const std::string& pid_text, const std::string& pattern) {
  if (!pid_text.empty() && !pattern.empty()) {
    return absl::InvalidArgumentError("Specify either --pid or --pgrep, not both.");
  }
  if (pid_text.empty() && pattern.empty()) {
    return absl::InvalidArgumentError("Either --pid or --pgrep is required.");
  }
  if (!pid_text.empty()) {
    pid_t pid = 0;
    if (!ParseInt(std::string_view(pid_text), pid) || pid <= 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--pid %s: a PID must be a positive integer", pid_text));
    }
    if (kill(pid, 0) != 0 && errno == ESRCH) {
      return absl::NotFoundError(absl::StrFormat("pid %d: no such process", pid));
    }
    return pid;
  }
  auto matches = MatchProcesses(pattern);
  if (!matches.ok()) return matches.status();
  if (matches->empty()) {
    return absl::NotFoundError(absl::StrFormat("No process matches --pgrep '%s'.", pattern));
  }
  if (matches->size() > 1) {
    std::string list;
    for (const ProcessMatch& m : *matches) {
      absl::StrAppendFormat(&list, "\n  %7d  %s", m.pid, m.cmdline);
    }
    return absl::FailedPreconditionError(
        absl::StrFormat("--pgrep '%s' matches %d processes; name one with --pid (or a narrower "
                        "pattern):%s",
                        pattern, matches->size(), list));
  }
  return matches->front().pid;
}

}  // namespace crpp::pdum
