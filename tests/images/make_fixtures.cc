// Writes the fixture dump into a directory: bazel run //tests/images:make_fixtures -- DIR
#include <sys/stat.h>

#include <cstdio>

#include "tests/images/fixtures.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: make_fixtures DIR\n");
    return 2;
  }
  mkdir(argv[1], 0755);
  absl::Status s = crpp::testing::WriteFixtureDump(argv[1]);
  if (!s.ok()) {
    fprintf(stderr, "make_fixtures: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
