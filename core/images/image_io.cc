#include "core/images/image_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"

namespace crpp::images {
namespace {

constexpr size_t kReadBuffer = 64 * 1024;
constexpr size_t kWriteBuffer = 64 * 1024;

uint32_t LoadU32(const char* p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);  // x86-64 is little-endian, like the format
  return v;
}

void AppendU32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }

}  // namespace

absl::Status CheckEntryType(const ImageKind& kind, std::string_view type) {
  if (kind.entry_type == type || "criu." + std::string(kind.entry_type) == type) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("image %s holds %s entries, not %s", kind.name,
                      kind.entry_type.empty() ? "no protobuf" : kind.entry_type, type));
}

// ---- reader ----------------------------------------------------------------

ImageReader::ImageReader(int fd, bool owns_fd, std::string path)
    : fd_(fd), owns_fd_(owns_fd), path_(std::move(path)), buf_(new char[kReadBuffer]) {}

ImageReader::~ImageReader() {
  if (owns_fd_ && fd_ >= 0) close(fd_);
}

absl::StatusOr<std::unique_ptr<ImageReader>> ImageReader::Open(const std::string& path,
                                                               const ImageKind* expected) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrFormat("%s: cannot open: %s", path, strerror(errno)));
  }
  std::unique_ptr<ImageReader> r(new ImageReader(fd, true, path));
  if (auto s = r->ReadMagic(expected); !s.ok()) return s;
  return r;
}

absl::StatusOr<std::unique_ptr<ImageReader>> ImageReader::FromFd(int fd, std::string name,
                                                                 const ImageKind* expected) {
  std::unique_ptr<ImageReader> r(new ImageReader(fd, false, std::move(name)));
  if (auto s = r->ReadMagic(expected); !s.ok()) return s;
  return r;
}

absl::Status ImageReader::Error(std::string_view what) const {
  return absl::DataLossError(absl::StrFormat("%s: at offset %d: %s", path_, offset_, what));
}

absl::StatusOr<size_t> ImageReader::ReadSome(char* dst, size_t n) {
  size_t done = 0;
  while (done < n) {
    if (buf_pos_ == buf_len_) {
      ssize_t got;
      do {
        got = ::read(fd_, buf_.get(), kReadBuffer);
      } while (got < 0 && errno == EINTR);
      if (got < 0) return Error(absl::StrFormat("read failed: %s", strerror(errno)));
      if (got == 0) break;
      buf_pos_ = 0;
      buf_len_ = static_cast<size_t>(got);
    }
    size_t take = std::min(n - done, buf_len_ - buf_pos_);
    if (dst != nullptr) memcpy(dst + done, buf_.get() + buf_pos_, take);
    buf_pos_ += take;
    done += take;
  }
  offset_ += done;
  return done;
}

absl::Status ImageReader::ReadExactly(char* dst, size_t n, std::string_view what) {
  uint64_t start = offset_;
  auto got = ReadSome(dst, n);
  if (!got.ok()) return got.status();
  if (*got != n) {
    offset_ = start;
    return Error(
        absl::StrFormat("truncated: expected %s of %d bytes, found only %d", what, n, *got));
  }
  return absl::OkStatus();
}

absl::Status ImageReader::ReadMagic(const ImageKind* expected) {
  char word[4];
  if (auto s = ReadExactly(word, 4, "image magic"); !s.ok()) return s;
  uint32_t first = LoadU32(word);
  uint32_t magic = first;
  Head head = Head::kNone;
  if (first == kImgCommonMagic || first == kImgServiceMagic) {
    head = first == kImgCommonMagic ? Head::kCommon : Head::kService;
    if (auto s = ReadExactly(word, 4, "image magic after the head magic"); !s.ok()) return s;
    magic = LoadU32(word);
  }
  kind_ = FindKindByMagic(magic);
  if (kind_ == nullptr) {
    offset_ -= 4;
    return Error(absl::StrFormat("unknown image magic 0x%08x", magic));
  }
  if (kind_->head != head) {
    return Error(absl::StrFormat("image %s must %s", kind_->name,
                                 kind_->head == Head::kNone ? "not start with a head magic"
                                 : kind_->head == Head::kCommon
                                     ? "start with the common head magic 0x54564319"
                                     : "start with the service head magic 0x55105940"));
  }
  if (expected != nullptr && expected != kind_) {
    return Error(absl::StrFormat("expected a %s image, found %s", expected->name, kind_->name));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> ImageReader::AtEnd() {
  if (buf_pos_ < buf_len_) return false;
  // The buffer is empty: refill it without consuming anything.
  ssize_t n;
  do {
    n = ::read(fd_, buf_.get(), kReadBuffer);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Error(absl::StrFormat("read failed: %s", strerror(errno)));
  buf_pos_ = 0;
  buf_len_ = static_cast<size_t>(n);
  return n == 0;
}

absl::StatusOr<bool> ImageReader::Next(google::protobuf::Message& msg) {
  auto end = AtEnd();
  if (!end.ok()) return end.status();
  if (*end) return false;
  uint64_t start = offset_;
  char word[4];
  if (auto s = ReadExactly(word, 4, "entry size"); !s.ok()) return s;
  uint32_t size = LoadU32(word);
  if (size > kMaxEntrySize) {
    offset_ = start;
    return Error(absl::StrFormat("entry size %d is larger than the limit %d: corrupt image", size,
                                 kMaxEntrySize));
  }
  if (auto s = ReadGrowing(size, scratch_); !s.ok()) {
    offset_ = start;  // report where the broken entry begins
    return Error(absl::StrFormat("truncated: expected %s entry of %d bytes after its size field",
                                 msg.GetTypeName(), size));
  }
  msg.Clear();
  if (!msg.ParseFromString(scratch_)) {
    offset_ = start;
    return Error(absl::StrFormat("entry of %d bytes is not a valid %s", size, msg.GetTypeName()));
  }
  if (!msg.IsInitialized()) {
    offset_ = start;
    return Error(absl::StrFormat("%s entry lacks required fields: %s", msg.GetTypeName(),
                                 msg.InitializationErrorString()));
  }
  return true;
}

absl::Status ImageReader::ReadPayload(uint64_t size, std::string& out) {
  if (size > kMaxPayloadSize) {
    return Error(
        absl::StrFormat("payload of %d bytes is larger than the limit %d", size, kMaxPayloadSize));
  }
  uint64_t start = offset_;
  if (auto s = ReadGrowing(size, out); !s.ok()) {
    offset_ = start;
    return Error(absl::StrFormat("truncated: expected a payload of %d bytes", size));
  }
  return absl::OkStatus();
}

absl::Status ImageReader::ReadGrowing(uint64_t size, std::string& out) {
  // Grows the buffer only as data arrives: a corrupt size field then costs
  // an error, not an allocation of the size it claims.
  constexpr uint64_t kStep = 1 << 20;
  out.clear();
  while (out.size() < size) {
    size_t step = static_cast<size_t>(std::min<uint64_t>(size - out.size(), kStep));
    size_t old = out.size();
    out.resize(old + step);
    auto got = ReadSome(out.data() + old, step);
    if (!got.ok()) return got.status();
    if (*got != step) return absl::OutOfRangeError("end of file");
  }
  return absl::OkStatus();
}

absl::Status ImageReader::ReadToEnd(std::string& out) {
  out.clear();
  char chunk[kReadBuffer];
  for (;;) {
    auto got = ReadSome(chunk, sizeof chunk);
    if (!got.ok()) return got.status();
    out.append(chunk, *got);
    if (*got < sizeof chunk) return absl::OkStatus();
    if (out.size() > kMaxPayloadSize) return Error("payload larger than the limit");
  }
}

absl::Status ImageReader::SkipPayload(uint64_t size) {
  uint64_t start = offset_;
  while (size > 0) {
    size_t step = std::min<uint64_t>(size, kReadBuffer);
    auto got = ReadSome(nullptr, step);
    if (!got.ok()) return got.status();
    if (*got != step) {
      offset_ = start;
      return Error("truncated payload");
    }
    size -= step;
  }
  return absl::OkStatus();
}

// ---- writer ----------------------------------------------------------------

ImageWriter::ImageWriter(int fd, bool owns_fd, std::string path, const ImageKind& kind)
    : fd_(fd), owns_fd_(owns_fd), path_(std::move(path)), kind_(&kind) {
  buf_.reserve(kWriteBuffer);
}

ImageWriter::~ImageWriter() {
  if (fd_ >= 0) {
    (void)Flush();
    if (owns_fd_) close(fd_);
  }
}

absl::StatusOr<std::unique_ptr<ImageWriter>> ImageWriter::Create(const std::string& path,
                                                                 const ImageKind& kind) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrFormat("%s: cannot create image: %s", path, strerror(errno)));
  }
  std::unique_ptr<ImageWriter> w(new ImageWriter(fd, true, path, kind));
  if (auto s = w->Append(MagicBytes(kind)); !s.ok()) return s;
  return w;
}

absl::StatusOr<std::unique_ptr<ImageWriter>> ImageWriter::ToFd(int fd, std::string name,
                                                               const ImageKind& kind) {
  std::unique_ptr<ImageWriter> w(new ImageWriter(fd, false, std::move(name), kind));
  if (auto s = w->Append(MagicBytes(kind)); !s.ok()) return s;
  return w;
}

absl::Status ImageWriter::Write(const google::protobuf::Message& msg) {
  if (!msg.IsInitialized()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %s entry lacks required fields: %s",
                                                      path_, msg.GetTypeName(),
                                                      msg.InitializationErrorString()));
  }
  scratch_.clear();
  if (!msg.SerializeToString(&scratch_)) {
    return absl::InternalError(
        absl::StrFormat("%s: cannot serialize %s", path_, msg.GetTypeName()));
  }
  std::string size;
  AppendU32(size, static_cast<uint32_t>(scratch_.size()));
  if (auto s = Append(size); !s.ok()) return s;
  return Append(scratch_);
}

absl::Status ImageWriter::WritePayload(std::string_view bytes) { return Append(bytes); }

absl::Status ImageWriter::Append(std::string_view bytes) {
  if (fd_ < 0) return absl::FailedPreconditionError(path_ + ": image already closed");
  if (buf_.size() + bytes.size() > kWriteBuffer) {
    if (auto s = Flush(); !s.ok()) return s;
  }
  if (bytes.size() >= kWriteBuffer) {
    // Large payloads go straight to the file instead of through the buffer.
    while (!bytes.empty()) {
      ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        return absl::DataLossError(absl::StrFormat("%s: write failed: %s", path_, strerror(errno)));
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }
  buf_.append(bytes);
  return absl::OkStatus();
}

absl::Status ImageWriter::Flush() {
  std::string_view rest = buf_;
  while (!rest.empty()) {
    ssize_t n = ::write(fd_, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::DataLossError(absl::StrFormat("%s: write failed: %s", path_, strerror(errno)));
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
  buf_.clear();
  return absl::OkStatus();
}

absl::Status ImageWriter::Close() {
  if (fd_ < 0) return absl::OkStatus();
  absl::Status s = Flush();
  if (owns_fd_ && close(fd_) != 0 && s.ok()) {
    s = absl::DataLossError(absl::StrFormat("%s: close failed: %s", path_, strerror(errno)));
  }
  fd_ = -1;
  return s;
}

}  // namespace crpp::images
