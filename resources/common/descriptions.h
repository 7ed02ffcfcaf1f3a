// What the plugins of shared open descriptions (event fds, inotify, memfds,
// ...) share: finding every open description of one kind in the tree,
// reading the lines of /proc/PID/fdinfo/N, and the restore-side walk over
// files.img.
#ifndef CRPP_RESOURCES_COMMON_DESCRIPTIONS_H_
#define CRPP_RESOURCES_COMMON_DESCRIPTIONS_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/context.h"
#include "fdinfo.pb.h"

namespace crpp::resources::descriptions {

// /proc/PID/fdinfo/N as "key: value" pairs, in order (a key may repeat, as
// epoll's "tfd:" lines do). `flags` is the raw octal text.
struct FdInfoLines {
  std::vector<std::pair<std::string, std::string>> lines;
  // The value of the first line with KEY, or null.
  const std::string* Find(std::string_view key) const;
  // The value of KEY parsed as an integer (base given), or an error naming
  // WHAT (the pid and fd) when it is missing or not a number.
  absl::StatusOr<uint64_t> Number(std::string_view key, int base, const std::string& what) const;
};
absl::StatusOr<FdInfoLines> ReadFdInfoLines(pid_t pid, int fd);

// One open description found by ForEachDescription: the first fd seen that
// holds it, with its fdinfo.
struct Found {
  pid_t pid;
  int fd;
  uint32_t flags;  // open flags, O_CLOEXEC cleared
  FdInfoLines info;
  std::string link;  // what /proc/PID/fd/FD points to
  struct stat st;    // of the open file
};

// Every fd of every live task of ctx.tree whose /proc link MATCH accepts
// (or is LINK, e.g. "anon_inode:[eventfd]"): for each description seen for
// the first time,
// DESCRIBE fills the kind's payload of a files.img entry of TYPE (whose id is
// set afterwards), which is added to ctx.files; every fd holding it is
// recorded in ctx.fd_ids. Descriptions shared by fds of one or several tasks
// (dup, fork) are found with kcmp and get one entry.
using Describe = std::function<absl::Status(const Found&, criu::file_entry&)>;
using LinkMatch = std::function<bool(std::string_view link)>;
absl::Status ForEachDescription(DumpContext& ctx, const LinkMatch& match, criu::fd_types type,
                                const Describe& describe);
absl::Status ForEachDescription(DumpContext& ctx, std::string_view link, criu::fd_types type,
                                const Describe& describe);

// "pid P fd F" for messages.
std::string Where(pid_t pid, int fd);

// An internal error "WHAT: strerror(errno)".
absl::Status Errno(const std::string& what);

// A copy, in the engine, of the open file `pid`'s `fd` refers to
// (pidfd_getfd): to ask the description what only an fd of it tells. The
// caller closes it.
absl::StatusOr<int> CopyFd(pid_t pid, int fd);

// The files.img entries of TYPE, read at restore.
absl::StatusOr<std::vector<criu::file_entry>> ReadEntries(const std::string& images_dir,
                                                          criu::fd_types type);

}  // namespace crpp::resources::descriptions

#endif  // CRPP_RESOURCES_COMMON_DESCRIPTIONS_H_
