#include "core/restore/restore_task.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "absl/strings/str_format.h"
#include "core/engine.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "core/restore/plan.h"
#include "parasite/blob_loader.h"
#include "restorer/restorer.h"
#include "restorer/restorer_blob.h"

namespace crpp::restore_internal {
namespace {

constexpr uint64_t kTaskSize = 0x7ffffffff000ull;

void WriteAll(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w <= 0 && errno != EINTR) return;
    if (w > 0) c += w, n -= static_cast<size_t>(w);
  }
}

[[noreturn]] void Fail(int status_fd, const absl::Status& s) {
  std::string msg(1, kError);
  msg += absl::StrFormat("pid %d: %s", getpid(), s.message());
  log::Error("restore: %s", msg.substr(1));
  WriteAll(status_fd, msg.data(), msg.size());
  _exit(1);
}

// Closes every fd but `keep`: the tree starts with only its own files.
void CloseAllBut(const std::set<int>& keep) {
  std::vector<int> fds;
  if (DIR* d = opendir("/proc/self/fd")) {
    int dfd = dirfd(d);
    while (dirent* e = readdir(d)) {
      int fd = atoi(e->d_name);
      if (e->d_name[0] != '.' && fd != dfd && !keep.count(fd)) fds.push_back(fd);
    }
    closedir(d);
  }
  for (int fd : fds) close(fd);
}

// Everything but the keep area and the vDSO areas, as ranges to unmap.
void FillUnmap(const RestorePlan& plan, restorer_args& a) {
  // The vDSO areas are the kernel's: the restorer moves them (or, when the
  // task had none, leaves them where they are).
  std::vector<std::pair<uint64_t, uint64_t>> keep = plan.kernel_areas;
  keep.emplace_back(a.keep_start, a.keep_end);
  std::sort(keep.begin(), keep.end());
  uint64_t from = 0x1000;
  a.nr_unmap = 0;
  for (const auto& [s, e] : keep) {
    if (s > from) a.unmap[a.nr_unmap++] = {from, s};
    from = std::max(from, e);
  }
  if (from < kTaskSize) a.unmap[a.nr_unmap++] = {from, kTaskSize};
}

// Root only: makes room for the engine's fds above the task's own numbers,
// moves them there and closes everything else.
absl::Status SetUpRoot(TreeSpec& tree) {
  // Room for the status pipes and the descriptions the tasks share.
  int room = 4 * static_cast<int>(tree.tasks.size()) + 256;
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  rlim_t want = std::max<rlim_t>(nofile.rlim_cur, 1024 + static_cast<rlim_t>(room));
  if (want > nofile.rlim_cur && (nofile.rlim_max == RLIM_INFINITY || want <= nofile.rlim_max)) {
    nofile.rlim_cur = want;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  tree.fd_base = static_cast<int>(nofile.rlim_cur) - room;
  if (tree.fd_base < 64) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("RLIMIT_NOFILE (%d) leaves no room for the restore engine's %d descriptors",
                        nofile.rlim_cur, room));
  }
  std::set<int> keep;
  for (int& fd : tree.status_fds) {
    int high = fcntl(fd, F_DUPFD_CLOEXEC, tree.fd_base);
    if (high < 0) return absl::InternalError(absl::StrFormat("moving fds: %s", strerror(errno)));
    close(fd);
    fd = high;
    keep.insert(fd);
  }
  if (int lf = log::MoveFdAbove(tree.fd_base); lf >= 0) keep.insert(lf);
  for (auto& [resource, fd] : tree.inherit_fds) {
    int high = fcntl(fd, F_DUPFD_CLOEXEC, tree.fd_base);
    if (high < 0) {
      return absl::InternalError(
          absl::StrFormat("--inherit-fd %s: moving fd %d: %s", resource, fd, strerror(errno)));
    }
    fd = high;
    keep.insert(fd);
  }
  if (tree.shell_job) {
    for (int fd = 0; fd <= 2 && tree.tty_fd < 0; ++fd) {
      if (isatty(fd)) tree.tty_fd = fcntl(fd, F_DUPFD_CLOEXEC, tree.fd_base);
    }
    if (tree.tty_fd >= 0) keep.insert(tree.tty_fd);
  }
  CloseAllBut(keep);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<pid_t> ForkWithPid(pid_t pid, uint64_t flags) {
  pid_t tid = pid;
  clone_args ca{};
  ca.flags = flags;
  ca.exit_signal = SIGCHLD;
  ca.set_tid = reinterpret_cast<uint64_t>(&tid);
  ca.set_tid_size = 1;
  long child = syscall(SYS_clone3, &ca, sizeof ca);
  // The dumped task may still be a zombie that its parent (or init) has not
  // reaped yet, or be on its way out (the kernel then says ENOENT while the
  // pid is released): it goes away on its own, so give it a moment.
  for (int i = 0; i < 150 && child < 0 && (errno == EEXIST || errno == ENOENT); ++i) {
    if (errno == EEXIST) {
      auto st = proc::ReadStat(pid);
      if (st.ok() && st->state != 'Z') break;
    }
    usleep(20000);
    child = syscall(SYS_clone3, &ca, sizeof ca);
  }
  if (child < 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "pid %d is in use by another process: cannot restore the task with its pid", pid));
    }
    return absl::PermissionDeniedError(
        absl::StrFormat("clone3 with pid %d: %s", pid, strerror(errno)));
  }
  return static_cast<pid_t>(child);
}

namespace {

// The engine's fds in a task: `status` (status pipes), the log, the terminal.
std::vector<int> EngineFds(const TreeSpec& tree, std::vector<int> status) {
  for (const auto& [key, fd] : tree.shared_memory) status.push_back(fd);
  for (const auto& [resource, fd] : tree.inherit_fds) status.push_back(fd);
  if (int lf = log::MoveFdAbove(tree.fd_base); lf >= 0) status.push_back(lf);
  if (tree.tty_fd >= 0) status.push_back(tree.tty_fd);
  return status;
}

// A task that was a zombie dies again the way it died first.
[[noreturn]] void DieAgain(int status_fd, int code) {
  WriteAll(status_fd, &kZombie, 1);
  close(status_fd);
  if (WIFSIGNALED(code)) {
    int sig = WTERMSIG(code);
    signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigprocmask(SIG_UNBLOCK, &one, nullptr);
    kill(getpid(), sig);
  }
  _exit(WEXITSTATUS(code));
}

void WaitForGo(std::atomic<uint32_t>& word) {
  while (word.load() == kWait) {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT, kWait, nullptr, nullptr, 0);
  }
}

void SetTurn(std::atomic<uint32_t>& word, uint32_t value) {
  word.store(value);
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

// Waits until the turn word of child tasks[j], which shares this task's fd
// table, says it has forked its children; fails if the child died first
// (its own error is in the log: its status pipe is read after ours).
void WaitForForked(TreeSpec& tree, size_t j, int status_fd) {
  std::atomic<uint32_t>& word = tree.turn[j];
  const pid_t child = tree.tasks[j].pid;
  while (word.load() == kTableWait) {
    timespec nap{0, 50 * 1000 * 1000};
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT, kTableWait, &nap, nullptr,
            0);
    siginfo_t si{};
    if (word.load() == kTableWait &&
        waitid(P_PID, static_cast<id_t>(child), &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        si.si_pid == child) {
      Fail(status_fd,
           absl::InternalError(absl::StrFormat(
               "pid %d, which shares this task's fd table, died during its restore "
               "(%s %d)",
               child, si.si_code == CLD_EXITED ? "exit status" : "signal", si.si_status)));
    }
  }
}

// The task before this one in its fd table hands over the table (see
// RunTask); if that task fails, the engine kills the tree.
void WaitForTurn(std::atomic<uint32_t>& word) {
  while (word.load() != kTableYourTurn) {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT, word.load(), nullptr,
            nullptr, 0);
  }
}

}  // namespace

[[noreturn]] void RunTask(TreeSpec& tree, size_t index) {
  const TaskSpec& me = tree.tasks[index];
  pid_t expected_parent = index == 0 ? tree.engine_pid : me.ppid;
  // No signal may reach the task before its handlers are back (its POSIX
  // timers are armed early): everything stays pending until the restorer's
  // sigreturn installs the task's own mask. And the task dies with its
  // parent until then: a failed restore leaves nothing behind.
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != expected_parent) _exit(1);
  if (index == 0) {
    if (auto s = SetUpRoot(tree); !s.ok()) Fail(tree.status_fds[0], s);
  }
  int status_fd = tree.status_fds[index];

  auto started = std::chrono::steady_clock::now();
  RestorePlan plan;
  plan.blob_size = blobs::restorer_blob::kBlob.mem_size;
  plan.nr_threads = me.threads.size();
  if (index != 0) plan.parent = tree.parent_plan;
  RestoreContext ctx;
  ctx.images_dir = tree.images_dir;
  ctx.pid = me.pid;
  ctx.threads = me.threads;
  ctx.root_pid = tree.tasks[0].pid;
  ctx.shell_job = tree.shell_job;
  ctx.tty_fd = tree.tty_fd;
  ctx.fd_base = tree.fd_base;
  ctx.inherit_fds = tree.inherit_fds;
  ctx.plan = &plan;
  ctx.shares_parent_files = me.shares_parent_files;
  ctx.engine_fds = EngineFds(tree, tree.status_fds);
  const AnyEngine& engine = *tree.engine;
  if (absl::Status s = engine.RestoreEarly(ctx); !s.ok()) Fail(status_fd, s);
  if (index == 0) {
    if (absl::Status s = engine.RestoreShared(ctx); !s.ok()) Fail(status_fd, s);
    tree.inherited = ctx.inherited;  // for the tasks forked from here on
    tree.shared_memory = ctx.shared_memory;
  } else {
    ctx.inherited = tree.inherited;
    ctx.shared_memory = tree.shared_memory;
  }
  if (absl::Status s = engine.RestoreBeforeChildren(ctx); !s.ok()) Fail(status_fd, s);
  tree.parent_plan = &plan;

  // An fd table shared by several tasks (a chain of clone(CLONE_FILES)
  // children, forked so below) holds the fds of all of them: the engine's
  // (status pipes, log, shared memory, ...) and their temporary ones (images
  // read, the restorer's mapping fds) at the lowest free numbers. The
  // table's owner puts the task's fds at their numbers with dup2, which
  // would silently replace any other fd there, and closes the descriptions
  // it inherited; a child forked from the table copies whatever is in it.
  // So the tasks of one table take turns, and only one of them at a time
  // opens or closes anything:
  //  1. a task forks its children, those that share its table last: after
  //     forking one of these it waits until that one has forked its own
  //     (its turn word says kTableForked). Every child forked from the
  //     table so gets a copy with the engine's fds and no other task's
  //     temporary one, and no fd of the table is closed before they all
  //     have their copies (of their status pipes above all). Children with
  //     tables of their own go first so that, running on meanwhile, they
  //     never wait for the sharers' restore (a group one of them leads,
  //     say): waiting, the sharers leave them time to set up theirs;
  //  2. the owner closes the status pipes of the tasks outside the table
  //     (all forked by then) and restores: the fds, then the rest
  //     (RestoreLate), while the other tasks of the table wait;
  //  3. each task of the table, in tree order, is handed the table by the
  //     one before it once that one is done with the log and every fd but
  //     its status pipe; a sharer restores no fd (Fds skips it), and its
  //     temporary fds take free numbers, past the owner's fds;
  //  4. the last one closes the engine's fds (log, terminal, shared memory,
  //     --inherit-fd), which the others used till then. Each status pipe is
  //     its own task's, closed by its restorer as its last act.
  // This task's children, with their pids; they inherit everything shared.
  std::vector<pid_t> zombies;
  auto fork_children = [&](bool sharing_table) {
    for (size_t j = index + 1; j < tree.tasks.size(); ++j) {
      const TaskSpec& c = tree.tasks[j];
      if (c.ppid != me.pid || c.shares_parent_files != sharing_table) continue;
      auto child = ForkWithPid(
          c.pid, (c.shares_parent_fs ? CLONE_FS : 0) | (c.shares_parent_files ? CLONE_FILES : 0));
      if (!child.ok()) Fail(status_fd, child.status());
      if (*child == 0) RunTask(tree, j);
      // A group leader that is no session leader: set its group from here
      // too, so its members never find the group missing.
      if (c.pgid == c.pid && c.sid != c.pid) setpgid(c.pid, c.pid);
      if (c.zombie) zombies.push_back(c.pid);
      if (sharing_table) WaitForForked(tree, j, status_fd);
    }
  };
  fork_children(false);
  fork_children(true);  // 1.
  if (me.zombie) DieAgain(status_fd, me.exit_code);
  // Zombie children die again now, so their SIGCHLD is discarded with the
  // rest of the restore's (the restorer ignores SIGCHLD once).
  for (pid_t z : zombies) {
    siginfo_t si;
    while (waitid(P_PID, static_cast<id_t>(z), &si, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
    }
  }
  std::vector<int> table_status;  // status pipes of the tasks using this table
  for (size_t j = 0; j < tree.tasks.size(); ++j) {
    if (tree.tasks[j].table_owner == me.table_owner) table_status.push_back(tree.status_fds[j]);
  }
  if (me.shares_parent_files) {
    SetTurn(tree.turn[index], kTableForked);
    WaitForTurn(tree.turn[index]);  // 3.
  } else {
    for (size_t j = 0; j < tree.tasks.size(); ++j) {  // 2.
      if (tree.tasks[j].table_owner != index) close(tree.status_fds[j]);
    }
  }
  ctx.engine_fds = EngineFds(tree, table_status);
  if (absl::Status s = engine.RestoreLate(ctx); !s.ok()) Fail(status_fd, s);

  auto loaded = LoadBlob(reinterpret_cast<void*>(plan.blob_addr), plan.keep_end - plan.blob_addr,
                         blobs::restorer_blob::kBlob);
  if (!loaded.ok()) Fail(status_fd, loaded.status());
  size_t blob_len = (blobs::restorer_blob::kBlob.mem_size + 4095) & ~4095ul;
  if (mprotect(reinterpret_cast<void*>(plan.blob_addr), blob_len,
               PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
    Fail(status_fd,
         absl::InternalError(absl::StrFormat("mprotect of the restorer: %s", strerror(errno))));
  }
  restorer_args& a = *plan.args;
  FillUnmap(plan, a);
  a.status_fd = status_fd;
  a.trap_before_sigreturn = 1;
  log::Info("restore: pid %d: jumping into the restorer (%d us)", me.pid,
            std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                  started)
                .count());
  // The task must not inherit the engine's log or terminal copies; only the
  // status pipe stays, and the restorer closes it as its last act. In a
  // table shared with tasks still to restore, the last of them closes them
  // (4. above): this one hands the table over and uses no fd but its status
  // pipe from here on.
  if (me.next_in_table >= 0) {
    log::ToStderr(/*close_fd=*/false);
    SetTurn(tree.turn[me.next_in_table], kTableYourTurn);
  } else {
    const std::vector<int> engine_fds = EngineFds(tree, {status_fd});
    log::ToStderr();
    for (int fd : engine_fds) {
      if (fd != status_fd) close(fd);
    }
  }
  // Tell the engine where the work area is, and wait until it traces us: it
  // removes the area once the task has left it.
  char msg[kJumpSize];
  msg[0] = kJump;
  memcpy(msg + 1, &a.keep_start, 8);
  memcpy(msg + 9, &a.keep_end, 8);
  msg[17] = plan.stopped ? 1 : 0;
  memcpy(msg + 18, &plan.pages_restored, 8);
  WriteAll(status_fd, msg, sizeof msg);
  WaitForGo(tree.go[index]);
  if (tree.go[index].load() != kGo) _exit(RESTORER_EXIT_BASE);
  restorer::SetEngineRseq(a);
  restorer::EnterRestorer(plan.blob_addr, &a);
}

}  // namespace crpp::restore_internal
