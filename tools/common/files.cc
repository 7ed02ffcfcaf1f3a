#include "tools/common/files.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/proc/proc.h"

namespace crpp::tools {

std::string ReadFile(const std::string& path) {
  absl::StatusOr<std::string> text = proc::ReadFile(path);
  return text.ok() ? *std::move(text) : std::string();
}

std::string TailLines(const std::string& path, int lines, const std::string& indent) {
  std::vector<std::string> all = absl::StrSplit(ReadFile(path), '\n');
  if (!all.empty() && all.back().empty()) all.pop_back();
  const size_t from = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
  std::string out;
  for (size_t i = from; i < all.size(); ++i) absl::StrAppend(&out, indent, all[i], "\n");
  return out;
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

absl::StatusOr<TempDir> TempDir::Create(const std::string& base, const std::string& prefix) {
  std::string templ = absl::StrCat(base, "/", prefix, ".XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot create a directory ", templ, ": ", strerror(errno)));
  }
  return TempDir(templ);
}

TempDir::~TempDir() {
  if (path_.empty() || keep_) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace crpp::tools
