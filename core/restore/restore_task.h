// The restore driver's two halves share this: the engine (restore.cc) forks
// the root task, and every restored task runs RunTask (restore_task.cc),
// which forks the task's own children, restores the task through the resource
// plugins and hands it to the restorer blob once the engine says go.
#ifndef CRPP_CORE_RESTORE_RESTORE_TASK_H_
#define CRPP_CORE_RESTORE_RESTORE_TASK_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "core/restore/plan.h"

namespace crpp::restore_internal {

// Status pipe protocol, task to engine: 'E' + message: a plugin failed;
// 'Z': a zombie is about to die again; 'J' + keep area [start, end) + a
// stopped flag byte + pages restored (u64): the task jumps into the restorer once its go word is
// set, and then either the restorer closes the pipe just before the task
// resumes, or writes {step, -errno}.
inline constexpr char kError = 'E';
inline constexpr char kZombie = 'Z';
inline constexpr char kJump = 'J';
inline constexpr size_t kJumpSize = 1 + 8 + 8 + 1 + 8;

// The engine's go words: a task waits on its own (futex) until it is kGo.
inline constexpr uint32_t kWait = 0, kGo = 1, kAbort = 2;

// The turn words of the tasks sharing an fd table (RunTask): a sharer sets
// its own to kForked once it and its own sharers have forked their children,
// and waits until the task before it in the table hands it kYourTurn.
inline constexpr uint32_t kTableWait = 0, kTableForked = 1, kTableYourTurn = 2;

struct TaskSpec {
  pid_t pid = 0, ppid = 0, pgid = 0, sid = 0;
  bool zombie = false;
  bool shares_parent_fs = false;  // forked with CLONE_FS (same fs_id in ids-PID.img)
  // Forked with CLONE_FILES: the same files_id in ids-PID.img as its parent.
  bool shares_parent_files = false;
  // The tasks using one fd table, in tree order: the index in `tasks` of
  // the table's owner (the first of them, the task itself when it shares
  // with nobody) and of the next one (-1: none).
  size_t table_owner = 0;
  int next_in_table = -1;
  int exit_code = 0;           // a zombie's wait status (core-PID.img)
  std::vector<pid_t> threads;  // tids of its threads but the main one
};

// What every restored task needs, set up by the engine and the root task and
// inherited by the others (each is forked after the root filled it).
struct TreeSpec {
  std::string images_dir;
  bool shell_job = false;
  const AnyEngine* engine = nullptr;  // the plugins every task runs
  pid_t engine_pid = 0;
  std::vector<TaskSpec> tasks;            // pstree order: tasks[0] is the root
  std::vector<int> status_fds;            // write end of each task's status pipe
  std::atomic<uint32_t>* go = nullptr;    // shared memory: one word per task
  std::atomic<uint32_t>* turn = nullptr;  // shared memory: a turn word per task
  // Set in the root before the fork:
  int fd_base = 0;  // the engine's fds in the tasks are at or above this
  int tty_fd = -1;
  std::map<uint32_t, int> inherited;      // RestoreContext::inherited
  std::map<uint64_t, int> shared_memory;  // RestoreContext::shared_memory
  // --inherit-fd: resource -> the caller's fd (moved to the engine's range
  // in the root).
  std::map<std::string, int> inherit_fds;
  // Set in each task before it forks its children: its own plan, which they
  // see as RestorePlan::parent.
  const RestorePlan* parent_plan = nullptr;
};

// The tree to restore, from pstree.img (and each zombie's core image for
// its exit code, each live task's ids image for what it shares with its
// parent): parents before children, the root first (read_tree.cc).
absl::StatusOr<std::vector<TaskSpec>> ReadTree(const std::string& images_dir);

// clone3 with the given pid (0 in the child) and extra clone flags, waiting
// a moment for a dumped task that still holds the pid while it goes away.
absl::StatusOr<pid_t> ForkWithPid(pid_t pid, uint64_t flags = 0);

// Runs in the freshly forked task tasks[index]; never returns.
[[noreturn]] void RunTask(TreeSpec& tree, size_t index);

}  // namespace crpp::restore_internal

#endif  // CRPP_CORE_RESTORE_RESTORE_TASK_H_
