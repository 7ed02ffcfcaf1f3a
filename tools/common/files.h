// Files for the demo and the benchmark: reading logs and a temporary
// directory that removes itself.
#ifndef CRPP_TOOLS_COMMON_FILES_H_
#define CRPP_TOOLS_COMMON_FILES_H_

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/statusor.h"

namespace crpp::tools {

// The whole file ("" when it cannot be read).
std::string ReadFile(const std::string& path);

// The last LINES lines of PATH, each prefixed with INDENT ("" when empty).
std::string TailLines(const std::string& path, int lines, const std::string& indent);

// The size of the file at PATH in bytes, or -1.
int64_t FileSize(const std::string& path);

// A fresh directory BASE/PREFIX.XXXXXX that is removed with its contents when
// the object goes away, unless Keep() was called.
class TempDir {
 public:
  static absl::StatusOr<TempDir> Create(const std::string& base, const std::string& prefix);
  TempDir(TempDir&& other) noexcept
      : path_(std::exchange(other.path_, std::string())), keep_(other.keep_) {}
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }
  void Keep() { keep_ = true; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
  bool keep_ = false;
};

}  // namespace crpp::tools

#endif  // CRPP_TOOLS_COMMON_FILES_H_
