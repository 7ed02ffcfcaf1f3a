// blob2h: turns a blob linked by //parasite:blob.bzl into a C++ header.
//
//   blob2h --name=NAME [--entry=SYMBOL]... INPUT.elf OUTPUT.h
//
// Exits 1 with every reason on stderr when the ELF is not a self-contained
// blob (see blob_elf.h), which fails the build of that blob.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "parasite/tools/blob_elf.h"

namespace {

int Usage() {
  std::fprintf(stderr, "usage: blob2h --name=NAME [--entry=SYMBOL]... INPUT.elf OUTPUT.h\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string name;
  std::vector<std::string> entries;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.starts_with("--name=")) {
      name = arg.substr(7);
    } else if (arg.starts_with("--entry=")) {
      entries.emplace_back(arg.substr(8));
    } else if (arg.starts_with("--")) {
      return Usage();
    } else {
      paths.emplace_back(arg);
    }
  }
  if (paths.size() != 2 || name.empty()) return Usage();
  if (!crpp::blobtool::IsIdentifier(name)) {
    std::fprintf(stderr, "blob2h: --name=%s is not a C++ identifier\n", name.c_str());
    return 2;
  }
  for (const std::string& e : entries) {
    if (!crpp::blobtool::IsIdentifier(e)) {
      std::fprintf(stderr, "blob2h: --entry=%s is not a C identifier\n", e.c_str());
      return 2;
    }
  }

  std::ifstream in(paths[0], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "blob2h: cannot open %s\n", paths[0].c_str());
    return 1;
  }
  std::vector<unsigned char> elf((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
  auto blob = crpp::blobtool::ReadLinkedBlob(elf, entries);
  if (!blob.ok()) {
    std::fprintf(stderr, "blob2h: %s is not a usable blob:\n%s\n", paths[0].c_str(),
                 std::string(blob.status().message()).c_str());
    return 1;
  }
  std::ofstream out(paths[1], std::ios::binary | std::ios::trunc);
  // Only the file name: the header must not depend on the output directory.
  const std::string source = paths[0].substr(paths[0].find_last_of('/') + 1);
  out << crpp::blobtool::RenderHeader(*blob, name, source);
  if (!out.flush()) {
    std::fprintf(stderr, "blob2h: cannot write %s\n", paths[1].c_str());
    return 1;
  }
  return 0;
}
