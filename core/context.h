// What the engine hands to resource plugins during a dump and a restore.
#ifndef CRPP_CORE_CONTEXT_H_
#define CRPP_CORE_CONTEXT_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace criu {
class file_entry;
class fown_entry;
}  // namespace criu

namespace crpp {

namespace ptrace {
class Task;
}  // namespace ptrace
namespace infect {
struct TaskState;
}  // namespace infect
namespace proc {
struct FdInfo;
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
  // Adds a second entry for the file of id ID (CRIU writes a REG entry with
  // the path next to the TTY entry of a terminal, under the same id).
  void AddSameId(uint32_t id, criu::file_entry entry);
  const std::vector<criu::file_entry>& entries() const;

  // Open file descriptions seen so far, to find the ones several fds (of one
  // task or of several) share: the id of the description (pid, fd) refers
  // to, if one already in the table is the same (kcmp KCMP_FILE), else 0.
  uint32_t FindDescription(pid_t pid, int fd, uint64_t dev, uint64_t ino) const;
  void AddDescription(uint32_t id, pid_t pid, int fd, uint64_t dev, uint64_t ino);

 private:
  struct Description {
    uint32_t id;
    pid_t pid;
    int fd;
    uint64_t dev, ino;
  };
  std::vector<Description> descriptions_;
  std::vector<criu::file_entry> entries_;
  std::map<std::pair<std::string, uint32_t>, uint32_t> by_path_;
};

// The owner part of a files.img entry for a file that has no F_SETOWN owner
// or signal set (all zero): what every entry carries for now.
void SetNoOwner(criu::fown_entry& owner);

struct DumpStats {
  uint64_t freezing_us = 0, frozen_us = 0, memdump_us = 0, memwrite_us = 0;
  uint64_t pages_scanned = 0, pages_written = 0, pages_zero = 0;
};

// One process of the dumped tree and what /proc said about it once frozen.
struct TreeTask {
  pid_t pid = 0;
  pid_t ppid = 0;                // 0 for the root of the tree
  uint32_t id = 0;               // 1, 2, ... in tree order: its kernel-object ids
  ptrace::Task* task = nullptr;  // null for a zombie, or before the freeze
  // The process's other threads, seized too (by tid, ascending).
  std::vector<ptrace::Task*> threads;
  // /proc/TID/stat and status of each of them, read once frozen (the same
  // order); null where the driver did not read them (tests of plugins).
  const std::vector<proc::Stat>* thread_stats = nullptr;
  const std::vector<proc::Status>* thread_statuses = nullptr;
  const proc::Stat* stat = nullptr;
  const proc::Status* status = nullptr;
  const std::vector<proc::Vma>* maps = nullptr;  // empty for a zombie
  // The fd table this task uses, as an id: its own id, or, for a child made
  // by clone(CLONE_FILES) that still shares its parent's table, the
  // parent's files_id (the table's owner is the highest task sharing it
  // along the parent links). 0 where the dump driver did not set it (tests
  // of plugins): its own.
  uint32_t files_id = 0;
  bool zombie() const;
  // Live and the owner of its fd table: the tasks whose fds a walk over the
  // tree's fds looks at. A table several tasks share is walked once, through
  // its owner, so that each fd is seen once (and a POSIX lock, which
  // belongs to the table, is too).
  bool owns_fd_table() const;
};

struct DumpContext {
  pid_t root_pid = 0;
  std::string images_dir;  // where images are written
  bool shell_job = false;
  // --external values ("unix[INO]", ...): what outside the tree the dump
  // may refer to.
  std::vector<std::string> external;
  bool file_locks = false;            // --file-locks: dump the locks tasks hold
  bool link_remap = false;            // --link-remap
  uint64_t ghost_limit = 1ull << 20;  // --ghost-limit: largest deleted file dumped
  // Files a plugin created outside the images directory (--link-remap's
  // links): the dump driver removes them if the dump fails.
  std::vector<std::string> remove_on_failure;
  // Every process of the tree, parents before their children; tree[0] is the
  // root. Set by the dump driver; empty in tests of plugins that need no task.
  std::vector<TreeTask> tree;
  // The task a per-task hook works on; the engine sets these before each
  // call (Select). Null in tests of plugins that need no task.
  pid_t pid = 0;
  uint32_t task_id = 1;
  // TreeTask::files_id of the task (task_id when its fd table is its own):
  // fdinfo-<files_id>.img holds the table, written by its owner.
  uint32_t files_id = 1;
  bool owns_fd_table() const { return files_id == task_id; }
  ptrace::Task* task = nullptr;
  std::vector<ptrace::Task*> threads;                          // its threads but the main one
  const std::vector<proc::Stat>* thread_stats = nullptr;       // TreeTask's
  const std::vector<proc::Status>* thread_statuses = nullptr;  // TreeTask's
  const proc::Stat* stat = nullptr;
  const proc::Status* status = nullptr;
  const std::vector<proc::Vma>* maps = nullptr;  // the task's memory map
  // The selected task is a zombie: only the tree and its exit code are
  // dumped (per-task plugins that need a live task skip it).
  bool zombie = false;
  FileTable* files = nullptr;
  DumpStats* stats = nullptr;
  // Shared open file descriptions, by (pid, fd), that a tree-wide plugin
  // (pipes, ...) already put in the file table: per-task plugins refer to
  // these ids instead of adding entries of their own.
  struct FdRef {
    uint32_t id = 0;  // file_entry id
    int type = 0;     // criu::fd_types of the entry
  };
  std::map<std::pair<pid_t, int>, FdRef> fd_ids;
  // Shared memory the shmem plugin dumped, for the VMAs that map it: the
  // MEMFD file id of a memfd (by inode). Anonymous shared memory is known by
  // its inode, which is its shmid.
  std::map<uint64_t, uint32_t> memfd_ids;
  // What a task's parasite reported (signal actions, timers, limits, ...),
  // by pid: read once while the parasite is in for the pages, so the task
  // plugin need not inject it again.
  std::map<pid_t, std::shared_ptr<const infect::TaskState>> task_states;
  // Names of the plugins whose Dump ran, in order (for logs and tests).
  std::vector<std::string> ran;

  // Work a per-task hook started and that finishes later, on this thread,
  // while the plugin goes on with the next tasks (the memory plugin's page
  // dumps: the copy runs on a thread of its own while the next task is
  // infected). The engine finishes all of it when the plugin's stage ends;
  // after a failure it drops it, and each piece undoes itself in its
  // destructor (before the dump driver releases the tasks).
  class Deferred {
   public:
    virtual ~Deferred() = default;
    virtual absl::Status Finish() = 0;
  };
  void Defer(std::unique_ptr<Deferred> work) { deferred.push_back(std::move(work)); }
  size_t deferred_count() const { return deferred.size(); }
  // Finishes the oldest piece (FIFO); none is OK.
  absl::Status FinishOldestDeferred();
  // Finishes every piece, oldest first; the first failure drops the rest.
  absl::Status FinishAllDeferred();
  void DropDeferred() { deferred.clear(); }

  // An open fd of a task as /proc shows it.
  struct OpenFd {
    int fd = -1;
    std::string link;   // what /proc/PID/fd/FD points to
    struct stat st {};  // of the open file
    // Its fdinfo (position, flags, mount) when read ahead once frozen, or
    // null.
    std::shared_ptr<const proc::FdInfo> info;
  };
  // OPEN's fdinfo: read ahead, or now.
  static absl::StatusOr<proc::FdInfo> InfoOf(pid_t pid, const OpenFd& open);
  // The open fds of live task `pid`, by number, read from /proc once and
  // shared by every plugin (a dozen of them walk the fds; frozen, the tree's
  // fd tables hold still). An fd closed while it is read (a task not frozen
  // yet) is left out. The dump driver forgets them all when it reads the
  // tree again once frozen (ForgetOpenFds).
  absl::StatusOr<const std::vector<OpenFd>*> OpenFds(pid_t task);
  void ForgetOpenFds() { open_fds.reset(); }
  // Reads the open fds of every fd table of the tree into OpenFds' cache,
  // the tasks spread over the CPUs, and `with_info` their fdinfo (once the
  // tree is frozen: positions and flags hold still). Returns how many fds it
  // found.
  size_t ReadTreeFdsAhead(bool with_info = false);
  // Calls FN(pid, fd) for every open fd of the tree's live tasks, each fd
  // table once: a table several tasks share (clone(CLONE_FILES)) through its
  // owner (TreeTask::owns_fd_table). The first error stops the walk.
  using TreeFdFn = std::function<absl::Status(pid_t, const OpenFd&)>;
  absl::Status ForEachTreeFd(const TreeFdFn& fn);
  // /proc/locks, read on a thread of its own: a read waits for an RCU grace
  // period (the kernel takes its file-lock rwsem for writing), 8-16 ms here,
  // which the dump driver overlaps with its own /proc reads. For a tree with
  // many fds it starts one read before the prechecks and one once the tree
  // is frozen (the locks a frozen tree holds stay put); the file-locks
  // plugin takes the last one, to read the fdinfo of only the fds on a
  // locked inode. A tree with few fds has each fdinfo read instead.
  void ReadProcLocksAhead();
  // The text of the last read started, waited for; NotFound if none was.
  absl::StatusOr<std::string> ProcLocks() const;
  // Below this many fds in the tree, reading each fdinfo costs less than
  // the grace period of one /proc/locks read.
  static constexpr size_t kFdinfoScanUpTo = 256;

  // A context on the same tree (and fd cache) with a file table of its own,
  // for a precheck that runs a plugin's dump walk without recording it.
  DumpContext Probe(FileTable* scratch) const {
    DumpContext probe;
    probe.tree = tree;
    probe.files = scratch;
    probe.open_fds = open_fds;
    probe.proc_locks = proc_locks;
    return probe;
  }

  void Select(const TreeTask& t) {
    pid = t.pid;
    task_id = t.id;
    files_id = t.files_id != 0 ? t.files_id : t.id;
    task = t.task;
    threads = t.threads;
    thread_stats = t.thread_stats;
    thread_statuses = t.thread_statuses;
    stat = t.stat;
    status = t.status;
    maps = t.maps;
    zombie = t.zombie();
  }

  // The pieces, oldest first (public so that DumpContext stays an aggregate:
  // go through the functions above).
  std::deque<std::unique_ptr<Deferred>> deferred;
  // OpenFds' cache, shared with probes.
  std::shared_ptr<std::map<pid_t, std::vector<OpenFd>>> open_fds;
  // ReadProcLocksAhead's read under way, or done.
  std::shared_future<absl::StatusOr<std::string>> proc_locks;
};

struct RestoreContext {
  std::string images_dir;      // where images are read from
  pid_t pid = 0;               // the task being restored (we run inside it)
  std::vector<pid_t> threads;  // its other threads (the restorer creates them)
  pid_t root_pid = 0;          // the root of the restored tree
  bool shell_job = false;
  int tty_fd = -1;  // the restoring shell's terminal (--shell-job), or -1
  // Descriptors the engine still needs inside the task (status pipe, log);
  // a task fd with one of these numbers cannot be restored.
  std::vector<int> engine_fds;
  // Open file descriptions several tasks share (pipes, files opened once and
  // inherited): opened in the root task before the others are forked, so
  // every task inherits them; file id -> the (engine-range) fd holding it.
  std::map<uint32_t, int> inherited;
  // Shared memory objects made in the root before the fork, for the VMAs that
  // map them (each task closes its copies once its memory is planned):
  // SharedMemoryKey(VMA status, shmid) -> an fd of the object (engine range).
  std::map<uint64_t, int> shared_memory;
  // --inherit-fd: resource ("pipe:[INO]", a file path without its leading
  // '/') -> an fd of the caller's that stands for it (engine range).
  std::map<std::string, int> inherit_fds;
  // The task shares its parent's fd table (it was forked with CLONE_FILES):
  // the table's owner restores the fds in it, so this task installs none and
  // closes none (not even the inherited descriptions: the owner does).
  bool shares_parent_files = false;
  // Lowest fd number of the engine's range: fds the engine keeps in the task
  // (inherited ones included) are put at or above it.
  int fd_base = 0;
  // Takes `fd` as file id `id` for every task: moves it to fd_base or above
  // (closing `fd`) and records it in `inherited`.
  absl::Status Inherit(uint32_t id, int fd);
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
