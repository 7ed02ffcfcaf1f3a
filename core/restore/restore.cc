#include "core/restore/restore.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <optional>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "core/ptrace/task.h"
#include "core/restore/follow.h"
#include "core/restore/restore_task.h"
#include "core/strings.h"
#include "resources/default_resources.h"
#include "resources/files/ghost.h"
#include "restorer/restorer_args.h"
#include "stats.pb.h"

namespace crpp {
namespace {

using restore_internal::TaskSpec;
using restore_internal::TreeSpec;

// stats-restore, as CRIU writes it.
absl::Status WriteRestoreStats(const std::string& dir, uint64_t pages, uint64_t forking_us,
                               std::chrono::steady_clock::time_point started) {
  criu::stats_entry e;
  auto* r = e.mutable_restore();
  r->set_pages_compared(0);
  r->set_pages_skipped_cow(0);
  r->set_forking_time(static_cast<uint32_t>(forking_us));
  r->set_restore_time(static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                std::chrono::steady_clock::now() - started)
                                                .count()));
  r->set_pages_restored(pages);
  auto w =
      images::TypedImageWriter<criu::stats_entry>::Create(dir + "/stats-restore", images::Stats());
  if (!w.ok()) return w.status();
  if (auto s = w->Write(e); !s.ok()) return s;
  return w->Close();
}

// What a task reported on its status pipe once it was ready for the
// restorer (a zombie reports only that it dies again).
struct Report {
  bool zombie = false;
  uint64_t keep_start = 0, keep_end = 0;
  bool stopped = false;
  uint64_t pages = 0;
};

// Reads task `pid`'s report, once its status pipe is readable.
absl::StatusOr<Report> ReadReport(int status_fd, pid_t pid) {
  char first = 0;
  for (;;) {
    ssize_t n = read(status_fd, &first, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::InternalError(absl::StrFormat("pid %d died before restoring anything", pid));
    }
    break;
  }
  Report rep;
  if (first == restore_internal::kError) {
    return absl::InternalError(restore_internal::ReadRest(status_fd, pid));
  }
  if (first == restore_internal::kZombie) {
    rep.zombie = true;
    return rep;
  }
  if (first != restore_internal::kJump) {
    return absl::InternalError(absl::StrFormat("pid %d: garbled status", pid));
  }
  char buf[restore_internal::kJumpSize - 1];
  size_t got = 0;
  while (got < sizeof buf) {
    ssize_t n = read(status_fd, buf + got, sizeof buf - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError(absl::StrFormat("pid %d: garbled status", pid));
    got += static_cast<size_t>(n);
  }
  memcpy(&rep.keep_start, buf, 8);
  memcpy(&rep.keep_end, buf + 8, 8);
  rep.stopped = buf[16] != 0;
  memcpy(&rep.pages, buf + 17, 8);
  return rep;
}

// The engine's side of a restore in progress: the status pipes' read ends,
// the go words, and the tasks it traces. Kills the whole tree unless told
// the restore succeeded.
class Restoring {
 public:
  // While the tree is restored the engine is a child subreaper: the tasks
  // of a failed restore that lose their parent come to it, to be collected.
  explicit Restoring(TreeSpec& tree) : tree_(tree) {
    prctl(PR_GET_CHILD_SUBREAPER, &was_subreaper_);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
  }
  ~Restoring() {
    for (int fd : status_r_) close(fd);
    if (!succeeded_) KillAll();
    if (tree_.go != nullptr) munmap(tree_.go, GoBytes());
    prctl(PR_SET_CHILD_SUBREAPER, was_subreaper_);
  }

  absl::Status Prepare() {
    void* m = mmap(nullptr, GoBytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return absl::InternalError(absl::StrFormat("mmap: %s", strerror(errno)));
    tree_.go = static_cast<std::atomic<uint32_t>*>(m);
    tree_.turn = tree_.go + tree_.tasks.size();
    for (size_t i = 0; i < tree_.tasks.size(); ++i) {
      int p[2];
      if (pipe2(p, O_CLOEXEC) != 0) {
        return absl::InternalError(absl::StrFormat("pipe: %s", strerror(errno)));
      }
      status_r_.push_back(p[0]);
      tree_.status_fds.push_back(p[1]);
    }
    return absl::OkStatus();
  }

  // After the root was forked: the write ends are the tasks' now.
  void Forked(pid_t root) {
    root_ = root;
    for (int fd : tree_.status_fds) close(fd);
  }

  // Takes every task to the end of its restorer, then lets them all go.
  // Each task is traced as soon as it reports that it is ready, and goes
  // through its restorer while the others are still being restored.
  absl::Status Finish(uint64_t& pages) {
    const size_t n = tree_.tasks.size();
    std::vector<Report> reports(n);
    std::vector<size_t> waiting(n);  // the tasks yet to report
    for (size_t i = 0; i < n; ++i) waiting[i] = i;
    restore_internal::RestorerFollower follower(traced_threads_);
    std::vector<pollfd> fds;
    auto looked = std::chrono::steady_clock::now();
    while (!waiting.empty() || follower.Active()) {
      // The restorers' stops; once every task has reported, only those.
      auto moved = follower.Poll(/*block=*/waiting.empty());
      if (!moved.ok()) return ReportedError(waiting).value_or(moved.status());
      if (waiting.empty()) continue;
      fds.clear();
      for (size_t i : waiting) fds.push_back(pollfd{status_r_[i], POLLIN, 0});
      // While restorers run, come back to their stops soon.
      const int timeout_ms = !follower.Active() ? 200 : *moved ? 0 : 1;
      const int ready = poll(fds.data(), fds.size(), timeout_ms);
      if (ready < 0 && errno != EINTR) {
        return absl::InternalError(absl::StrFormat("poll: %s", strerror(errno)));
      }
      if (ready <= 0) {
        if (auto s = RootAlive(); !s.ok()) return s;
        if (std::chrono::steady_clock::now() - looked > std::chrono::milliseconds(200)) {
          looked = std::chrono::steady_clock::now();
          if (auto s = NoneDiedSilently(waiting); !s.ok()) return s;
        }
        continue;
      }
      std::vector<size_t> still;
      for (size_t k = 0; k < fds.size(); ++k) {
        const size_t i = waiting[k];
        if (fds[k].revents == 0) {
          still.push_back(i);
          continue;
        }
        const pid_t pid = tree_.tasks[i].pid;
        auto rep = ReadReport(status_r_[i], pid);
        if (!rep.ok()) return rep.status();
        reports[i] = *rep;
        if (rep->zombie) continue;
        traced_.push_back(pid);
        if (auto s = follower.Add(pid, tree_.tasks[i].threads.size(), status_r_[i], &tree_.go[i]);
            !s.ok()) {
          return s;
        }
        pages += rep->pages;
      }
      waiting.swap(still);
    }
    // All tasks are restored and held at their last syscall: remove the
    // restorer's areas (code cannot unmap the page it runs from) and let
    // them go, stopped ones stopped.
    for (size_t i = 0; i < tree_.tasks.size(); ++i) {
      if (reports[i].zombie) continue;
      pid_t pid = tree_.tasks[i].pid;
      auto task = ptrace::Task::Adopt(pid);
      if (!task.ok()) return task.status();
      auto r = (*task)->SyscallAtIp(SYS_munmap, reports[i].keep_start,
                                    reports[i].keep_end - reports[i].keep_start);
      if (!r.ok()) return r.status();
      if (*r != 0) {
        return absl::InternalError(absl::StrFormat("pid %d: removing the restorer's area: %s", pid,
                                                   strerror(static_cast<int>(-*r))));
      }
      // Each thread is held too: adopting blocks its signals, so the ones
      // the restorer queued wait, with their siginfo, until its release.
      held_.push_back(std::move(*task));
      for (pid_t tid : tree_.tasks[i].threads) {
        auto th = ptrace::Task::Adopt(tid);
        if (!th.ok()) return th.status();
        held_.push_back(std::move(*th));
      }
    }
    // The main thread of a stopped process first: its SIGSTOP stops the
    // others as they are let go.
    for (size_t i = 0, h = 0; i < tree_.tasks.size(); ++i) {
      if (reports[i].zombie) continue;
      auto how = reports[i].stopped ? ptrace::Leave::kStopped : ptrace::Leave::kRunning;
      released_.push_back(tree_.tasks[i].pid);
      if (auto s = held_[h++]->Release(how); !s.ok()) return s;
      for (size_t t = 0; t < tree_.tasks[i].threads.size(); ++t) {
        if (auto s = held_[h++]->Release(ptrace::Leave::kRunning); !s.ok()) return s;
      }
    }
    held_.clear();
    traced_.clear();
    traced_threads_.clear();
    return absl::OkStatus();
  }

  void Succeeded() { succeeded_ = true; }

 private:
  // The go words, then the turn words.
  size_t GoBytes() const { return std::max<size_t>(4096, tree_.tasks.size() * 8); }

  // A task yet to report that has died (a zombie) and left nothing on its
  // status pipe: another task sharing its fd table (clone(CLONE_FILES))
  // holds the pipe's write end, so its end never shows there.
  absl::Status NoneDiedSilently(const std::vector<size_t>& waiting) const {
    for (size_t i : waiting) {
      const pid_t pid = tree_.tasks[i].pid;
      auto st = proc::ReadStat(pid);  // not there: not forked yet
      if (!st.ok() || st->state != 'Z') continue;
      pollfd p{status_r_[i], POLLIN, 0};
      if (poll(&p, 1, 0) == 0) {
        return absl::InternalError(
            absl::StrFormat("pid %d died during the restore without a report", pid));
      }
    }
    return absl::OkStatus();
  }

  // The error one of the tasks yet to report reported (unread yet), if
  // any: a task that failed while the engine followed the others' restorers
  // may be what disturbed them (its children, dying with it, come to the
  // engine), and it says why.
  std::optional<absl::Status> ReportedError(const std::vector<size_t>& waiting) {
    for (size_t i : waiting) {
      pollfd p{status_r_[i], POLLIN, 0};
      char first = 0;
      if (poll(&p, 1, 0) == 1 && read(status_r_[i], &first, 1) == 1 &&
          first == restore_internal::kError) {
        return absl::InternalError(restore_internal::ReadRest(status_r_[i], tree_.tasks[i].pid));
      }
    }
    return std::nullopt;
  }

  // Notices the root's death while tasks have yet to report (another
  // process holding their pipes open would otherwise hide it). WNOWAIT: the
  // root stays a zombie (its pid taken) until KillAll collects it.
  absl::Status RootAlive() const {
    siginfo_t si{};
    // A traced root's stops are reported too: only its end counts.
    if (waitid(P_PID, static_cast<id_t>(root_), &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        si.si_pid == root_ &&
        (si.si_code == CLD_EXITED || si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED)) {
      return absl::InternalError(absl::StrFormat(
          "pid %d died during the restore (%s %d) before its tree was restored", root_,
          si.si_code == CLD_EXITED ? "exit status" : "signal", si.si_status));
    }
    return absl::OkStatus();
  }

  // Nothing half-restored survives: every task dies with its parent until
  // its restore is done (PR_SET_PDEATHSIG), so killing the root takes the
  // whole tree; the tasks we trace are killed and collected one by one.
  void KillAll() {
    if (tree_.go != nullptr) {
      for (size_t i = 0; i < tree_.tasks.size(); ++i) {
        tree_.go[i].store(restore_internal::kAbort);
        syscall(SYS_futex, reinterpret_cast<uint32_t*>(&tree_.go[i]), FUTEX_WAKE, 1, nullptr,
                nullptr, 0);
      }
    }
    held_.clear();
    // Released already (the caller's callback failed): ours, as their pids
    // were reported by the tasks themselves.
    for (pid_t pid : released_) kill(pid, SIGKILL);
    // Threads before their main threads: a main thread's end is reported
    // only once the other threads are collected.
    for (pid_t tid : traced_threads_) {
      kill(tid, SIGKILL);
      int st;
      waitpid(tid, &st, __WALL);
    }
    for (pid_t pid : traced_) {
      kill(pid, SIGKILL);
      int st;
      if (pid != root_) waitpid(pid, &st, __WALL);
    }
    if (root_ > 0) {
      kill(root_, SIGKILL);
      int st;
      waitpid(root_, &st, __WALL);
    }
    // The others die with their parents (PR_SET_PDEATHSIG) and come to us:
    // collect them, so that none of their pids stays taken by a zombie.
    for (int round = 0; root_ > 0 && round < 200; ++round) {
      bool left = false;
      for (const TaskSpec& t : tree_.tasks) {
        if (t.pid == root_) continue;
        int st;
        pid_t r = waitpid(t.pid, &st, WNOHANG | __WALL);
        if (r == 0 || (r < 0 && errno == ECHILD && IsOurs(t.pid))) {
          left = true;
        }
      }
      if (!left) break;
      usleep(5000);
    }
  }

  // A task of the tree that still belongs to this restore: a descendant of
  // the engine.
  static bool IsOurs(pid_t pid) {
    for (int depth = 0; depth < 64 && pid > 1; ++depth) {
      auto st = proc::ReadStat(pid);
      if (!st.ok()) return false;
      if (st->ppid == getpid()) return true;
      pid = st->ppid;
    }
    return false;
  }

  TreeSpec& tree_;
  std::vector<int> status_r_;
  pid_t root_ = 0;
  std::vector<pid_t> traced_;          // main threads
  std::vector<pid_t> traced_threads_;  // the others
  std::vector<pid_t> released_;
  std::vector<std::unique_ptr<ptrace::Task>> held_;
  bool succeeded_ = false;
  int was_subreaper_ = 0;
};

}  // namespace

absl::StatusOr<InheritFd> ParseInheritFd(std::string_view arg) {
  InheritFd in;
  const size_t close_at = arg.find("]:");
  if (!arg.starts_with("fd[") || close_at == std::string_view::npos ||
      !ParseInt(arg.substr(3, close_at - 3), in.fd) || in.fd < 0 || close_at + 2 >= arg.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--inherit-fd %s: want fd[N]:RESOURCE (e.g. fd[0]:pipe:[12345])", std::string(arg)));
  }
  in.resource = std::string(arg.substr(close_at + 2));
  return in;
}

absl::StatusOr<RestoreResult> Restore(const RestoreRequest& request) {
  auto t0 = std::chrono::steady_clock::now();
  // The tasks change their working directories while restoring, so the
  // images are found by absolute path.
  char* real = realpath(request.images_dir.c_str(), nullptr);
  if (real == nullptr) {
    return absl::NotFoundError(
        absl::StrFormat("images directory %s: %s", request.images_dir, strerror(errno)));
  }
  TreeSpec tree;
  tree.images_dir = real;
  free(real);
  tree.shell_job = request.shell_job;
  tree.engine = request.engine != nullptr ? request.engine : &DefaultEngine();
  for (const InheritFd& in : request.inherit_fds) {
    if (fcntl(in.fd, F_GETFD) < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--inherit-fd fd[%d]:%s: fd %d is not open", in.fd, in.resource, in.fd));
    }
    if (!tree.inherit_fds.emplace(in.resource, in.fd).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--inherit-fd: %s is given twice", in.resource));
    }
  }
  tree.engine_pid = getpid();
  auto tasks = restore_internal::ReadTree(tree.images_dir);
  if (!tasks.ok()) return tasks.status();
  tree.tasks = std::move(*tasks);

  Restoring restoring(tree);
  if (auto s = restoring.Prepare(); !s.ok()) return s;
  auto child = restore_internal::ForkWithPid(tree.tasks[0].pid);
  if (!child.ok()) return child.status();
  if (*child == 0) restore_internal::RunTask(tree, 0);
  restoring.Forked(*child);
  auto forked_at = std::chrono::steady_clock::now();
  uint64_t pages = 0;
  if (auto s = restoring.Finish(pages); !s.ok()) return s;

  RestoreResult r;
  r.pid = *child;
  r.restore_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count());
  if (auto s = WriteRestoreStats(
          tree.images_dir, pages,
          std::chrono::duration_cast<std::chrono::microseconds>(forked_at - t0).count(), t0);
      !s.ok()) {
    log::Warn("restore: stats-restore: %s", s.ToString());
  }
  if (request.on_running) {
    // The caller could not record the tree (e.g. its pidfile): the restore
    // failed, and a failed restore leaves nothing behind (criu kills the
    // tree when it cannot write the pidfile, too).
    if (auto cb = request.on_running(r.pid); !cb.ok()) return cb;
  }
  restoring.Succeeded();
  if (auto s = resources::Ghosts::RemoveLinks(tree.images_dir); !s.ok()) {
    log::Warn("restore: %s", s.ToString());
  }
  log::Info("restore: %d tasks below pid %d run (%d us)", tree.tasks.size(), r.pid, r.restore_us);
  return r;
}

}  // namespace crpp
