// Reading and writing image files in CRIU's framing.
//
// An image file is
//   [u32 head magic]  IMG_COMMON (0x54564319) or IMG_SERVICE (0x55105940);
//                     absent in inventory.img
//   u32 image magic   e.g. CORE
//   { u32 size, size bytes of a protobuf message, [extra payload] }*
// all little-endian. Raw images (pages-N.img) have no framing at all.
//
// Readers stream: they hold one buffer, never the whole file, so a multi-GiB
// image costs a few KiB of memory. Every error names the file and the byte
// offset where the problem was found.
#ifndef CRPP_CORE_IMAGES_IMAGE_IO_H_
#define CRPP_CORE_IMAGES_IMAGE_IO_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/images/magic.h"
#include "google/protobuf/message.h"

namespace crpp::images {

// No entry in a valid image is anywhere near this; a larger size field means
// the file is corrupt, and checking it first keeps us from allocating garbage.
inline constexpr uint32_t kMaxEntrySize = 64u << 20;

class ImageReader {
 public:
  // Opens `path` and reads its magic. Fails if the file is not an image, or
  // if `expected` is given and the image is of another kind.
  static absl::StatusOr<std::unique_ptr<ImageReader>> Open(const std::string& path,
                                                           const ImageKind* expected = nullptr);
  // Reads from an fd the caller keeps owning (e.g. stdin); `name` is used in errors.
  static absl::StatusOr<std::unique_ptr<ImageReader>> FromFd(int fd, std::string name,
                                                             const ImageKind* expected = nullptr);
  ~ImageReader();

  const ImageKind& kind() const { return *kind_; }
  const std::string& path() const { return path_; }
  uint64_t offset() const { return offset_; }

  // Reads the next entry into `msg`. Returns false at a clean end of file;
  // a truncated entry or one that does not parse as `msg` is an error.
  absl::StatusOr<bool> Next(google::protobuf::Message& msg);
  // Reads exactly `size` bytes of payload that follows an entry.
  absl::Status ReadPayload(uint64_t size, std::string& out);
  // Reads everything up to the end of the file (ghost file contents).
  absl::Status ReadToEnd(std::string& out);
  // Skips `size` bytes of payload.
  absl::Status SkipPayload(uint64_t size);
  // True when there are no more bytes.
  absl::StatusOr<bool> AtEnd();

  // An error that names this file and the current offset.
  absl::Status Error(std::string_view what) const;

 private:
  ImageReader(int fd, bool owns_fd, std::string path);
  absl::Status ReadMagic(const ImageKind* expected);
  // Reads exactly n bytes; returns the number read before EOF (< n at EOF).
  absl::StatusOr<size_t> ReadSome(char* dst, size_t n);
  absl::Status ReadExactly(char* dst, size_t n, std::string_view what);
  // Reads exactly `size` bytes into `out`; fails at end of file.
  absl::Status ReadGrowing(uint64_t size, std::string& out);

  int fd_;
  bool owns_fd_;
  std::string path_;
  const ImageKind* kind_ = nullptr;
  uint64_t offset_ = 0;
  // Not zeroed: a restore opens a dozen images in each task, mostly a page
  // or less, and zeroing 64 KiB for each (and faulting it in) cost more
  // than reading them.
  std::unique_ptr<char[]> buf_;
  size_t buf_pos_ = 0;
  size_t buf_len_ = 0;
  std::string scratch_;
};

class ImageWriter {
 public:
  // Creates (or truncates) `path` and writes the magic(s) of `kind`.
  static absl::StatusOr<std::unique_ptr<ImageWriter>> Create(const std::string& path,
                                                             const ImageKind& kind);
  // Writes to an fd the caller keeps owning (e.g. stdout).
  static absl::StatusOr<std::unique_ptr<ImageWriter>> ToFd(int fd, std::string name,
                                                           const ImageKind& kind);
  ~ImageWriter();

  const ImageKind& kind() const { return *kind_; }
  const std::string& path() const { return path_; }

  absl::Status Write(const google::protobuf::Message& msg);
  absl::Status WritePayload(std::string_view bytes);
  // Flushes buffered bytes and closes the file; errors of the last writes
  // surface here, so callers must check it.
  absl::Status Close();

 private:
  ImageWriter(int fd, bool owns_fd, std::string path, const ImageKind& kind);
  absl::Status Append(std::string_view bytes);
  absl::Status Flush();

  int fd_;
  bool owns_fd_;
  std::string path_;
  const ImageKind* kind_;
  std::string buf_;
  std::string scratch_;
};

// Typed views: the compiler checks the message type, the constructor checks
// that the image kind carries that type.
template <class Entry>
class TypedImageReader {
 public:
  static absl::StatusOr<TypedImageReader> Open(const std::string& path, const ImageKind& kind) {
    auto r = ImageReader::Open(path, &kind);
    if (!r.ok()) return r.status();
    if (auto s = CheckEntryType(kind, Entry::descriptor()->full_name()); !s.ok()) return s;
    return TypedImageReader(std::move(*r));
  }
  absl::StatusOr<bool> Next(Entry& e) { return reader_->Next(e); }
  ImageReader& raw() { return *reader_; }

 private:
  explicit TypedImageReader(std::unique_ptr<ImageReader> r) : reader_(std::move(r)) {}
  std::unique_ptr<ImageReader> reader_;
};

template <class Entry>
class TypedImageWriter {
 public:
  static absl::StatusOr<TypedImageWriter> Create(const std::string& path, const ImageKind& kind) {
    if (auto s = CheckEntryType(kind, Entry::descriptor()->full_name()); !s.ok()) return s;
    auto w = ImageWriter::Create(path, kind);
    if (!w.ok()) return w.status();
    return TypedImageWriter(std::move(*w));
  }
  absl::Status Write(const Entry& e) { return writer_->Write(e); }
  absl::Status Close() { return writer_->Close(); }
  ImageWriter& raw() { return *writer_; }

 private:
  explicit TypedImageWriter(std::unique_ptr<ImageWriter> w) : writer_(std::move(w)) {}
  std::unique_ptr<ImageWriter> writer_;
};

// Reads every entry of a single-type image (small images only: core, mm, ...).
template <class Entry>
absl::StatusOr<std::vector<Entry>> ReadAll(const std::string& path, const ImageKind& kind) {
  auto r = TypedImageReader<Entry>::Open(path, kind);
  if (!r.ok()) return r.status();
  std::vector<Entry> out;
  for (;;) {
    Entry e;
    auto more = r->Next(e);
    if (!more.ok()) return more.status();
    if (!*more) return out;
    out.push_back(std::move(e));
  }
}

}  // namespace crpp::images

#endif  // CRPP_CORE_IMAGES_IMAGE_IO_H_
