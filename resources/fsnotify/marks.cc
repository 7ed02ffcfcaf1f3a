#include "resources/fsnotify/marks.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "resources/common/descriptions.h"

namespace crpp::resources::fsnotify {
namespace {

constexpr int kHandleWords = 16;  // fh_entry carries at least this many words

}  // namespace

Fields SplitFields(std::string_view line) {
  Fields out;
  for (std::string_view field : Split(line, ' ')) {
    size_t colon = field.find(':');
    if (colon == std::string_view::npos) continue;
    out.emplace_back(field.substr(0, colon), field.substr(colon + 1));
  }
  return out;
}

absl::StatusOr<FileHandle> HandleFrom(const Fields& fields, const std::string& what) {
  FileHandle h;
  std::string_view hex;
  for (const auto& [k, v] : fields) {
    if (k == "f_handle") hex = v;
  }
  if (!HexField(fields, "fhandle-bytes", h.bytes) || !HexField(fields, "fhandle-type", h.type) ||
      hex.size() != 2 * static_cast<size_t>(h.bytes) || h.bytes > kHandleWords * 8) {
    return absl::UnimplementedError(absl::StrFormat(
        "%s: its filesystem gives no file handle for the inode: not supported", what));
  }
  for (size_t i = 0; i < hex.size(); i += 2) {
    uint32_t byte = 0;
    if (!ParseInt(hex.substr(i, 2), byte, 16)) {
      return absl::DataLossError(absl::StrFormat("%s: bad file handle \"%s\"", what, hex));
    }
    h.raw.push_back(static_cast<char>(byte));
  }
  return h;
}

absl::StatusOr<std::vector<Mount>> Mounts(pid_t pid) {
  auto text = proc::ReadFile(absl::StrFormat("/proc/%d/mountinfo", pid));
  if (!text.ok()) return text.status();
  std::vector<Mount> out;
  for (std::string_view line : Split(*text, '\n')) {
    // "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw": id, parent, dev,
    // root within the filesystem, mount point.
    std::vector<std::string_view> f = Split(line, ' ');
    if (f.size() < 5) continue;
    std::vector<std::string_view> dev = Split(f[2], ':');
    Mount m;
    unsigned major = 0, minor = 0;
    if (!ParseInt(f[0], m.id) || dev.size() != 2 || !ParseInt(dev[0], major) ||
        !ParseInt(dev[1], minor)) {
      continue;
    }
    m.sdev = (major << 20) | minor;
    m.point = std::string(f[4]);
    out.push_back(std::move(m));
  }
  return out;
}

absl::StatusOr<std::string> InodePath(pid_t pid, uint32_t sdev, uint64_t ino,
                                      const FileHandle& handle, const std::string& what) {
  auto mounts = Mounts(pid);
  if (!mounts.ok()) return mounts.status();
  for (const Mount& m : *mounts) {
    if (m.sdev != sdev) continue;
    const std::string point = absl::StrFormat("/proc/%d/root%s", pid, m.point);
    int mfd = open(point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mfd < 0) continue;
    std::vector<char> buf(sizeof(file_handle) + handle.raw.size());
    auto* fh = reinterpret_cast<file_handle*>(buf.data());
    fh->handle_bytes = static_cast<unsigned>(handle.raw.size());
    fh->handle_type = handle.type;
    memcpy(fh->f_handle, handle.raw.data(), handle.raw.size());
    int fd = open_by_handle_at(mfd, fh, O_PATH | O_CLOEXEC);
    close(mfd);
    if (fd < 0) continue;
    auto path = proc::ReadLink(absl::StrFormat("/proc/self/fd/%d", fd));
    close(fd);
    if (!path.ok()) return path.status();
    if (path->empty() || (*path)[0] != '/' || path->ends_with(" (deleted)")) {
      return absl::UnimplementedError(
          absl::StrFormat("%s is on an inode without a path (%s): not supported", what, *path));
    }
    return *path;
  }
  // No mount of its filesystem that the task sees, or the filesystem no
  // longer opens it (a file deleted since).
  return absl::UnimplementedError(absl::StrFormat(
      "%s is on inode %#x of device %u:%u, which no mount pid %d sees opens (deleted?): not "
      "supported",
      what, ino, sdev >> 20, sdev & 0xfffff, pid));
}

void FillHandle(const FileHandle& handle, const std::string& path, criu::fh_entry& fh) {
  fh.set_bytes(handle.bytes);
  fh.set_type(static_cast<uint32_t>(handle.type));
  for (int i = 0; i < kHandleWords; ++i) {
    uint64_t word = 0;
    const size_t at = static_cast<size_t>(i) * 8;
    if (at < handle.raw.size()) {
      memcpy(&word, handle.raw.data() + at, std::min<size_t>(8, handle.raw.size() - at));
    }
    fh.add_handle(word);
  }
  fh.set_path(path);
}

void WarnQueuedEvents(pid_t pid, int fd, std::string_view kind) {
  // Only a warning: a copy that cannot be had does not stop the dump.
  auto copy = descriptions::CopyFd(pid, fd);
  if (!copy.ok()) {
    log::Debug("%s: %s", kind, copy.status().message());
    return;
  }
  int bytes = 0;
  if (ioctl(*copy, FIONREAD, &bytes) == 0 && bytes > 0) {
    log::Warn(
        "%s: pid %d fd %d holds %d bytes of unread events: they are lost (a restored %s "
        "starts with an empty queue)",
        kind, pid, fd, bytes, kind);
  }
  close(*copy);
}

}  // namespace crpp::resources::fsnotify
