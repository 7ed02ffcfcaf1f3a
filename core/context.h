// What the engine hands to resource plugins during a dump and a restore.
#ifndef CRPP_CORE_CONTEXT_H_
#define CRPP_CORE_CONTEXT_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace criu {
class file_entry;
}  // namespace criu

namespace crpp {

namespace ptrace {
class Task;
}  // namespace ptrace
namespace proc {
struct Stat;
struct Status;
struct Vma;
}  // namespace proc
struct RestorePlan;

// The order in which resource families are dumped and restored. A plugin may
// depend only on plugins of its own or an earlier stage; the registry checks
// that at compile time.
enum class Stage : int {
  kInventory = 0,  // image-set metadata
  kTree,           // tasks, pids, sessions
  kNamespaces,     // namespaces the tree lives in
  kShared,         // resources several tasks share: pipes, sockets, shmem
  kFiles,          // file descriptors
  kMemory,         // address space and page contents
  kTask,           // per-task state applied last: creds, signals, timers
};

constexpr std::string_view StageName(Stage s) {
  switch (s) {
    case Stage::kInventory:
      return "inventory";
    case Stage::kTree:
      return "tree";
    case Stage::kNamespaces:
      return "namespaces";
    case Stage::kShared:
      return "shared";
    case Stage::kFiles:
      return "files";
    case Stage::kMemory:
      return "memory";
    case Stage::kTask:
      return "task";
  }
  return "?";
}

// Open file descriptions and files the dump refers to (fds, the executable,
// mapped files, cwd and root): each gets an id; files.img lists them all.
class FileTable {
 public:
  FileTable();
  ~FileTable();
  // Adds an entry (its id is set here) and returns the id.
  uint32_t Add(criu::file_entry entry);
  // The id of a regular file opened read-only at `path`, added once.
  uint32_t AddPath(const std::string& path, uint32_t flags);
  const std::vector<criu::file_entry>& entries() const;

 private:
  std::vector<criu::file_entry> entries_;
  std::map<std::pair<std::string, uint32_t>, uint32_t> by_path_;
};

struct DumpStats {
  uint64_t freezing_us = 0, frozen_us = 0, memdump_us = 0, memwrite_us = 0;
  uint64_t pages_scanned = 0, pages_written = 0, pages_zero = 0;
};

struct DumpContext {
  pid_t root_pid = 0;
  std::string images_dir;  // where images are written
  bool shell_job = false;
  // The seized task and what /proc said about it (set by the dump driver;
  // null in tests of plugins that need no task).
  ptrace::Task* task = nullptr;
  const proc::Stat* stat = nullptr;
  const proc::Status* status = nullptr;
  const std::vector<proc::Vma>* maps = nullptr;  // the task's memory map
  FileTable* files = nullptr;
  DumpStats* stats = nullptr;
  // Names of the plugins whose Dump ran, in order (for logs and tests).
  std::vector<std::string> ran;
};

struct RestoreContext {
  std::string images_dir;  // where images are read from
  pid_t pid = 0;           // the task being restored (we run inside it)
  bool shell_job = false;
  int tty_fd = -1;  // the restoring shell's terminal (--shell-job), or -1
  // Descriptors the engine still needs inside the task (status pipe, log);
  // a task fd with one of these numbers cannot be restored.
  std::vector<int> engine_fds;
  // What the plugins prepare for the last stage (the restorer); null in
  // tests of plugins that do not restore into a task.
  RestorePlan* plan = nullptr;
  // Paths of the regular files in files.img, by id (filled by the fds plugin).
  std::map<uint32_t, std::string> file_paths;
  const std::string* file_path(uint32_t id) const {
    auto it = file_paths.find(id);
    return it == file_paths.end() ? nullptr : &it->second;
  }
  std::vector<std::string> ran;
};

}  // namespace crpp

#endif  // CRPP_CORE_CONTEXT_H_
