// Reads a blob linked by //parasite:blob.bzl (an ELF64 x86-64 PIE whose one
// image starts at 0) and turns it into the C++ header the engine embeds.
//
// The reader is the gate that keeps blobs honest: a blob is copied as flat
// bytes and fixed up with R_X86_64_RELATIVE only, so anything else - an
// undefined symbol (a libc call), another relocation type, an interpreter,
// a shared library dependency, TLS - would break at run time in a process
// that has no dynamic loader. ReadLinkedBlob refuses all of them and says why.
#ifndef CRPP_PARASITE_TOOLS_BLOB_ELF_H_
#define CRPP_PARASITE_TOOLS_BLOB_ELF_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace crpp::blobtool {

struct LinkedBlob {
  // Bytes from 0 to the end of the file-backed part of the image, with each
  // relocated word holding its addend (its link-time value).
  std::vector<unsigned char> image;
  uint64_t mem_size = 0;              // the image plus bss
  uint64_t align = 1;                 // largest alignment of an allocated section
  std::vector<uint64_t> relocations;  // sorted offsets
  std::vector<std::pair<std::string, uint64_t>> entries;  // as requested
};

// Parses `elf`, checks that it is a self-contained blob, and resolves each
// name in `entries` to its offset (each must be a defined code symbol).
// An error lists every problem found, one per line.
absl::StatusOr<LinkedBlob> ReadLinkedBlob(std::span<const unsigned char> elf,
                                          std::span<const std::string> entries);

// True for a C identifier (namespace and kEntry_ names are made from these).
bool IsIdentifier(std::string_view s);

// The header text: namespace crpp::blobs::<name> with kImage, kImageSize,
// kMemSize, kAlign, kEntry_<symbol>, kRelocations and kBlob. `source` names
// the input in the header's comment.
std::string RenderHeader(const LinkedBlob& blob, std::string_view name, std::string_view source);

}  // namespace crpp::blobtool

#endif  // CRPP_PARASITE_TOOLS_BLOB_ELF_H_
