// What the engine hands to resource plugins during a dump and a restore.
#ifndef CRPP_CORE_CONTEXT_H_
#define CRPP_CORE_CONTEXT_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace crpp {

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

struct DumpContext {
  pid_t root_pid = 0;
  std::string images_dir;  // where images are written
  // Names of the plugins whose Dump ran, in order (for logs and tests).
  std::vector<std::string> ran;
};

struct RestoreContext {
  std::string images_dir;  // where images are read from
  std::vector<std::string> ran;
};

}  // namespace crpp

#endif  // CRPP_CORE_CONTEXT_H_
