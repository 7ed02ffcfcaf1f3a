// Places a freestanding PIE blob (built by //parasite:blob.bzl) into memory
// the caller has mapped: copy the image, zero the bss, add the address the
// blob will run at (usually where it was copied) to every word blob2h listed
// as a relocation. That is all a blob needs,
// because blob2h refused any blob that would need more.
//
// Loading never allocates and calls nothing but memcpy/memset on success, so
// it is safe in a freshly forked child and on memory that will outlive the
// program that loaded it (the restorer unmaps its loader).
#ifndef CRPP_PARASITE_BLOB_LOADER_H_
#define CRPP_PARASITE_BLOB_LOADER_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace crpp {

// What a generated blob header describes (its kBlob constant).
struct BlobImage {
  // The file-backed bytes; relocated words hold their link-time value (the
  // offset from the image start), so loading adds the base address.
  std::span<const unsigned char> image;
  std::size_t mem_size = 0;  // image plus the zero-filled bss
  std::size_t align = 1;     // the largest section alignment: `dest` must honour it
  // Offsets of the 64-bit words that get the load address added.
  std::span<const std::size_t> relocations;
};

// Copies `blob` to `dest` (which has `dest_size` writable bytes), zero-fills
// the bss and relocates it to run at address `base`, which may differ from
// `dest`: the engine fills a shared mapping that the blob will run from at
// another address, in another process. Entry points are then at
// base + kEntry_<symbol>.
inline absl::Status LoadBlobAt(void* dest, std::size_t dest_size, const BlobImage& blob,
                               std::uint64_t base) {
  if (dest == nullptr) return absl::InvalidArgumentError("LoadBlob: no destination");
  if (blob.align == 0 || base % blob.align != 0) {
    return absl::InvalidArgumentError("LoadBlob: the load address is not aligned for the blob");
  }
  if (blob.image.size() > blob.mem_size || dest_size < blob.mem_size) {
    return absl::InvalidArgumentError("LoadBlob: destination is smaller than the blob");
  }
  auto* bytes = static_cast<unsigned char*>(dest);
  std::memcpy(bytes, blob.image.data(), blob.image.size());
  std::memset(bytes + blob.image.size(), 0, blob.mem_size - blob.image.size());
  for (std::size_t offset : blob.relocations) {
    // blob2h only lists words inside the image; check anyway rather than
    // write past a buffer if a header and its image ever disagree.
    if (offset > blob.image.size() || blob.image.size() - offset < sizeof(std::uint64_t)) {
      return absl::InvalidArgumentError("LoadBlob: relocation outside the image");
    }
    std::uint64_t word;
    std::memcpy(&word, bytes + offset, sizeof(word));  // relocated words need not be aligned
    word += base;
    std::memcpy(bytes + offset, &word, sizeof(word));
  }
  return absl::OkStatus();
}

// LoadBlobAt for code that runs where it is loaded. Returns `dest`; the
// caller sets the final protections (for example PROT_READ|PROT_EXEC over
// the whole mem_size when the blob writes no globals).
inline absl::StatusOr<void*> LoadBlob(void* dest, std::size_t dest_size, const BlobImage& blob) {
  absl::Status s = LoadBlobAt(dest, dest_size, blob, reinterpret_cast<std::uintptr_t>(dest));
  if (!s.ok()) return s;
  return dest;
}

}  // namespace crpp

#endif  // CRPP_PARASITE_BLOB_LOADER_H_
