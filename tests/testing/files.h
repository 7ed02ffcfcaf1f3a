// File helpers for tests: a scratch directory under Bazel's TEST_TMPDIR and
// whole-file reads and writes.
#ifndef CRPP_TESTS_TESTING_FILES_H_
#define CRPP_TESTS_TESTING_FILES_H_

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace crpp::testing {

inline std::string TempDir() {
  const char* t = getenv("TEST_TMPDIR");
  return t != nullptr ? t : "/tmp";
}

// TempDir()/name, created if missing.
inline std::string FreshDir(const std::string& name) {
  std::string dir = TempDir() + "/" + name;
  mkdir(dir.c_str(), 0700);
  return dir;
}

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void Spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

}  // namespace crpp::testing

#endif  // CRPP_TESTS_TESTING_FILES_H_
