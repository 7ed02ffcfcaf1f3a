// Reading a task's state from /proc/PID: memory map, stat, status, auxv,
// file descriptors. Every error names the pid and the file.
#ifndef CRPP_CORE_PROC_PROC_H_
#define CRPP_CORE_PROC_PROC_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace crpp::proc {

struct Vma {
  uint64_t start = 0, end = 0;
  bool read = false, write = false, exec = false, shared = false;
  uint64_t pgoff = 0;
  uint32_t dev_major = 0, dev_minor = 0;
  uint64_t inode = 0;
  std::string path;      // "" for anonymous, "[heap]", "[stack]", "[vdso]", a file path, ...
  bool deleted = false;  // the file was unlinked (" (deleted)" suffix)
  // From smaps VmFlags.
  bool growsdown = false;
  bool is_file() const { return inode != 0; }
  uint64_t size() const { return end - start; }
};

// The memory map of `pid`. With `with_flags` it is read from smaps, for the
// VMA flags (growsdown); smaps walks the page tables of every VMA, which
// costs milliseconds for a large process: without, /proc/PID/maps is read.
absl::StatusOr<std::vector<Vma>> ReadMaps(pid_t pid, bool with_flags = true);

struct Stat {
  std::string comm;
  char state = '?';
  pid_t ppid = 0, pgid = 0, sid = 0;
  uint32_t tty_nr = 0;  // the controlling terminal's device number (0: none)
  pid_t tpgid = 0;      // the controlling terminal's foreground group (-1: none)
  uint64_t flags = 0;
  int64_t nice = 0;
  uint64_t num_threads = 0;
  uint64_t start_code = 0, end_code = 0, start_stack = 0;
  uint64_t start_data = 0, end_data = 0, start_brk = 0;
  uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
  int64_t exit_code = 0;
};

absl::StatusOr<Stat> ReadStat(pid_t pid);

struct Status {
  uint32_t uid[4] = {}, gid[4] = {};  // real, effective, saved, fs
  std::vector<uint32_t> groups;
  uint64_t cap_inh = 0, cap_prm = 0, cap_eff = 0, cap_bnd = 0, cap_amb = 0;
  uint32_t no_new_privs = 0;
  uint32_t umask = 022;
  uint32_t seccomp = 0;
  uint32_t threads = 1;
};

absl::StatusOr<Status> ReadStatus(pid_t pid);

// The saved auxiliary vector, as 64-bit words (type, value pairs, AT_NULL last).
absl::StatusOr<std::vector<uint64_t>> ReadAuxv(pid_t pid);

// The target of a /proc symlink (exe, cwd, root, fd/N).
absl::StatusOr<std::string> ReadLink(const std::string& path);

// Open file descriptors, sorted.
absl::StatusOr<std::vector<int>> ListFds(pid_t pid);

struct FdInfo {
  uint64_t pos = 0;
  uint32_t flags = 0;  // open flags (octal in fdinfo), including O_CLOEXEC
  int32_t mnt_id = -1;
};

absl::StatusOr<FdInfo> ReadFdInfo(pid_t pid, int fd);

// Thread ids of process `pid` (its own among them), sorted, from /proc/PID/task.
absl::StatusOr<std::vector<pid_t>> ListThreads(pid_t pid);

// Child pids of `pid` (all threads), from /proc/PID/task/*/children.
absl::StatusOr<std::vector<pid_t>> ListChildren(pid_t pid);

// Whole-file read of a /proc file.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace crpp::proc

#endif  // CRPP_CORE_PROC_PROC_H_
