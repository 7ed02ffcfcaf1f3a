#include "api/internal.h"

#include <sys/capability.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/log.h"

namespace crpp::api_internal {
namespace {

bool Effective(cap_t caps, cap_value_t cap) {
  cap_flag_value_t v = CAP_CLEAR;
  return cap_get_flag(caps, cap, CAP_EFFECTIVE, &v) == 0 && v == CAP_SET;
}

}  // namespace

absl::Status RequireCaps(const std::string& what) {
  cap_t caps = cap_get_proc();
  if (caps == nullptr) return absl::OkStatus();  // cannot tell: the engine will say
  std::vector<std::string> missing;
  if (!Effective(caps, CAP_SYS_PTRACE)) missing.push_back("CAP_SYS_PTRACE");
  if (!Effective(caps, CAP_CHECKPOINT_RESTORE) && !Effective(caps, CAP_SYS_ADMIN)) {
    missing.push_back("CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN)");
  }
  cap_free(caps);
  if (missing.empty()) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      what, " needs ", absl::StrJoin(missing, " and "),
      " in the calling process's effective set; run it as root, or give the program the "
      "capabilities (setcap cap_checkpoint_restore,cap_sys_ptrace+ep PROGRAM)"));
}

std::string LogPathIn(const std::string& dir, const std::string& path,
                      const std::string& default_name) {
  if (path.empty()) return absl::StrCat(dir, "/", default_name);
  if (path[0] == '/') return path;
  return absl::StrCat(dir, "/", path);
}

absl::Status LogScope::Open(const std::string& path, int verbosity) {
  had_file_ = log::LogsToFile();
  previous_path_ = log::LogPath();
  previous_verbosity_ = log::Verbosity();
  if (absl::Status s = log::ToFile(path); !s.ok()) return s;
  open_ = true;
  log::SetVerbosity(verbosity);
  return absl::OkStatus();
}

LogScope::~LogScope() {
  if (!open_) return;
  log::SetVerbosity(previous_verbosity_);
  if (!had_file_ || !log::ToFile(previous_path_, /*append=*/true).ok()) log::ToStderr();
}

}  // namespace crpp::api_internal
