// What the inotify and fanotify plugins share: reading the mark lines of
// /proc/PID/fdinfo/N, finding what a mark is on (an inode by its file handle,
// a mount by its id, a filesystem by its device) as a path the restore can
// name again, and noticing the events an instance holds unread, which are
// lost: the kernel has no call that queues an event into a group.
#ifndef CRPP_RESOURCES_FSNOTIFY_MARKS_H_
#define CRPP_RESOURCES_FSNOTIFY_MARKS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/strings.h"
#include "fh.pb.h"

namespace crpp::resources::fsnotify {

// The "key:value" fields of one mark line ("wd:2 ino:3c51a sdev:fe00000
// ..."), in order; the views point into LINE.
using Fields = std::vector<std::pair<std::string_view, std::string_view>>;
Fields SplitFields(std::string_view line);

// The field KEY parsed as hex into OUT; false if it is missing or no number.
template <class Int>
bool HexField(const Fields& fields, std::string_view key, Int& out) {
  for (const auto& [k, v] : fields) {
    if (k == key) return ParseInt(v, out, 16);
  }
  return false;
}

// A file handle as fdinfo prints it: "fhandle-bytes:8 fhandle-type:1
// f_handle:1ac5030000000000" (the handle's bytes in hex).
struct FileHandle {
  uint32_t bytes = 0;
  int type = 0;
  std::string raw;
};
absl::StatusOr<FileHandle> HandleFrom(const Fields& fields, const std::string& what);

// The path of the inode HANDLE names (number INO) on the filesystem of
// device SDEV (the kernel's encoding: major << 20 | minor), opened through a
// mount of it that task PID sees. WHAT names the mark in errors ("pid 7 fd
// 4: inotify watch 2"); an inode without a path (a deleted file) is refused.
absl::StatusOr<std::string> InodePath(pid_t pid, uint32_t sdev, uint64_t ino,
                                      const FileHandle& handle, const std::string& what);

// Fills an image's fh_entry: the handle (in the 16 words CRIU writes) and
// the path it resolved to.
void FillHandle(const FileHandle& handle, const std::string& path, criu::fh_entry& fh);

// One line of /proc/PID/mountinfo.
struct Mount {
  uint32_t id = 0;
  uint32_t sdev = 0;  // the kernel's encoding, as fdinfo prints it
  std::string point;  // where it is mounted, seen from PID's root
};
absl::StatusOr<std::vector<Mount>> Mounts(pid_t pid);

// Logs a warning when the instance at PID's FD holds unread events: they
// are not in the images (KIND: "inotify", "fanotify").
void WarnQueuedEvents(pid_t pid, int fd, std::string_view kind);

}  // namespace crpp::resources::fsnotify

#endif  // CRPP_RESOURCES_FSNOTIFY_MARKS_H_
