#include "core/restore/restore.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <set>

#include "absl/strings/str_format.h"
#include "core/engine.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "core/ptrace/task.h"
#include "core/restore/plan.h"
#include "parasite/blob_loader.h"
#include "pstree.pb.h"
#include "resources/default_resources.h"
#include "restorer/restorer.h"
#include "restorer/restorer_blob.h"
#include "stats.pb.h"

namespace crpp {
namespace {

// Status pipe protocol, child to parent: 'E' + message: a plugin failed;
// 'J': the task jumps into the restorer; then either EOF (the restorer closed
// the pipe just before the task resumed) or {step, -errno} from the restorer.
constexpr char kError = 'E';
constexpr char kJump = 'J';
constexpr uint64_t kTaskSize = 0x7ffffffff000ull;

const char* StepName(int step) {
  switch (step) {
    case RESTORER_STEP_UNMAP:
      return "unmapping the restore engine";
    case RESTORER_STEP_VMAS:
      return "mapping memory";
    case RESTORER_STEP_VDSO:
      return "moving the vDSO";
    case RESTORER_STEP_SIGNALS:
      return "signal actions";
    case RESTORER_STEP_TIMERS:
      return "itimers";
    case RESTORER_STEP_MM:
      return "mm layout (PR_SET_MM_MAP)";
    case RESTORER_STEP_THREAD:
      return "thread state (robust list, rseq, TLS)";
    case RESTORER_STEP_SIGRETURN:
      return "sigreturn";
    case RESTORER_STEP_ARGS:
      return "checking its arguments";
    case RESTORER_STEP_CREDS:
      return "credentials";
  }
  return "an unknown step";
}

void WriteAll(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w <= 0 && errno != EINTR) return;
    if (w > 0) c += w, n -= static_cast<size_t>(w);
  }
}

[[noreturn]] void ChildFail(int status_fd, const absl::Status& s) {
  std::string msg(1, kError);
  msg += std::string(s.message());
  log::Error("restore: %s", std::string(s.message()));
  WriteAll(status_fd, msg.data(), msg.size());
  _exit(1);
}

// Closes every fd but `keep`: the task starts with only its own files.
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

// stats-restore, as CRIU writes it; the task knows best what it restored.
absl::Status WriteRestoreStats(const std::string& dir, const RestorePlan& plan,
                               std::chrono::steady_clock::time_point started) {
  criu::stats_entry e;
  auto* r = e.mutable_restore();
  r->set_pages_compared(0);
  r->set_pages_skipped_cow(0);
  r->set_forking_time(0);
  r->set_restore_time(static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                std::chrono::steady_clock::now() - started)
                                                .count()));
  r->set_pages_restored(plan.pages_restored);
  auto w =
      images::TypedImageWriter<criu::stats_entry>::Create(dir + "/stats-restore", images::Stats());
  if (!w.ok()) return w.status();
  if (auto s = w->Write(e); !s.ok()) return s;
  return w->Close();
}

[[noreturn]] void RunChild(const RestoreRequest& req, pid_t pid, int status_fd, int go_fd) {
  // No signal may reach the task before its handlers are back (its POSIX
  // timers are armed early): everything stays pending until the restorer's
  // sigreturn installs the task's own mask.
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  // Keep the engine's fds out of the way of the task's own numbers.
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  int high = static_cast<int>(std::min<rlim_t>(nofile.rlim_cur, 4096)) - 16;
  int st = fcntl(status_fd, F_DUPFD_CLOEXEC, high);
  if (st < 0) _exit(2);
  close(status_fd);
  status_fd = st;
  int go = fcntl(go_fd, F_DUPFD_CLOEXEC, high);
  if (go < 0) _exit(2);
  close(go_fd);
  std::set<int> keep = {status_fd, go};
  if (int lf = log::MoveFdAbove(high); lf >= 0) keep.insert(lf);
  int tty = -1;
  if (req.shell_job) {
    for (int fd = 0; fd <= 2 && tty < 0; ++fd) {
      if (isatty(fd)) tty = fcntl(fd, F_DUPFD_CLOEXEC, high);
    }
    if (tty >= 0) keep.insert(tty);
  }
  CloseAllBut(keep);

  auto started = std::chrono::steady_clock::now();
  RestorePlan plan;
  plan.blob_size = blobs::restorer_blob::kBlob.mem_size;
  RestoreContext ctx;
  ctx.images_dir = req.images_dir;
  ctx.pid = pid;
  ctx.shell_job = req.shell_job;
  ctx.tty_fd = tty;
  ctx.plan = &plan;
  ctx.engine_fds.assign(keep.begin(), keep.end());
  Engine<DefaultResources> engine;
  if (absl::Status s = engine.Restore(ctx); !s.ok()) ChildFail(status_fd, s);

  auto loaded = LoadBlob(reinterpret_cast<void*>(plan.blob_addr), plan.keep_end - plan.blob_addr,
                         blobs::restorer_blob::kBlob);
  if (!loaded.ok()) ChildFail(status_fd, loaded.status());
  size_t blob_len = (blobs::restorer_blob::kBlob.mem_size + 4095) & ~4095ul;
  if (mprotect(reinterpret_cast<void*>(plan.blob_addr), blob_len,
               PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
    ChildFail(status_fd, absl::InternalError(
                             absl::StrFormat("mprotect of the restorer: %s", strerror(errno))));
  }
  restorer_args& a = *plan.args;
  FillUnmap(plan, a);
  if (auto s = WriteRestoreStats(req.images_dir, plan, started); !s.ok()) ChildFail(status_fd, s);
  a.status_fd = status_fd;
  a.trap_before_sigreturn = 1;
  log::Info("restore: pid %d: jumping into the restorer", pid);
  // The task must not inherit the engine's log or terminal copies; only the
  // status pipe stays, and the restorer closes it as its last act.
  if (tty >= 0) close(tty);
  log::ToStderr();
  for (int fd : keep) {
    if (fd != status_fd && fd != go) close(fd);
  }
  // Tell the parent where the work area is, and wait until it traces us: it
  // removes the area once the task has left it.
  char msg[17];
  msg[0] = kJump;
  memcpy(msg + 1, &a.keep_start, 8);
  memcpy(msg + 9, &a.keep_end, 8);
  WriteAll(status_fd, msg, sizeof msg);
  char ok = 0;
  while (read(go, &ok, 1) < 0 && errno == EINTR) {
  }
  close(go);
  if (ok != 1) _exit(RESTORER_EXIT_BASE);
  restorer::SetEngineRseq(a);
  restorer::EnterRestorer(plan.blob_addr, &a);
}

absl::StatusOr<pid_t> RootPid(const std::string& dir) {
  auto tree = images::ReadAll<criu::pstree_entry>(dir + "/pstree.img", images::Pstree());
  if (!tree.ok()) return tree.status();
  if (tree->size() != 1) {
    return absl::UnimplementedError(
        absl::StrFormat("%s/pstree.img: %d tasks: restoring process trees is not supported yet",
                        dir, tree->size()));
  }
  return static_cast<pid_t>(tree->front().pid());
}

std::string ReadRest(int fd) {
  std::string got;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return got;
    got.append(buf, static_cast<size_t>(n));
  }
}

absl::Status RestorerFailure(pid_t child, const std::string& report, int wait_status) {
  if (report.size() >= 8) {
    int32_t step, err;
    memcpy(&step, report.data(), 4);
    memcpy(&err, report.data() + 4, 4);
    return absl::InternalError(absl::StrFormat("pid %d: the restorer failed at %s: %s", child,
                                               StepName(step), strerror(-err)));
  }
  if (WIFSIGNALED(wait_status)) {
    return absl::InternalError(absl::StrFormat("pid %d: killed by signal %d in the restorer", child,
                                               WTERMSIG(wait_status)));
  }
  return absl::InternalError(absl::StrFormat("pid %d: the restorer exited with status %d", child,
                                             WEXITSTATUS(wait_status)));
}

// Follows the task through the restorer with ptrace until its final
// rt_sigreturn; then removes the restorer's work area (code cannot unmap the
// page it runs from) and lets the task go.
absl::Status FinishUnderPtrace(pid_t child, int status_fd, int go_fd, uint64_t keep_start,
                               uint64_t keep_end) {
  if (::ptrace(PTRACE_SEIZE, child, nullptr, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL) != 0) {
    return absl::InternalError(absl::StrFormat("pid %d: PTRACE_SEIZE: %s", child, strerror(errno)));
  }
  if (::ptrace(PTRACE_INTERRUPT, child, nullptr, nullptr) != 0) {
    return absl::InternalError(
        absl::StrFormat("pid %d: PTRACE_INTERRUPT: %s", child, strerror(errno)));
  }
  // The go byte is sent only once the task has stopped for our interrupt
  // (it waits for that byte, so it cannot get further): the task is traced
  // before it can reach the restorer's final trap.
  bool told_to_go = false;
  // The task runs freely through the restorer until its int3 right before
  // rt_sigreturn (trap_before_sigreturn); from there it is stepped to the
  // syscall's exit, where it already is the restored task.
  enum { kToTrap, kToEntry, kToExit } phase = kToTrap;
  for (;;) {
    int st;
    if (waitpid(child, &st, __WALL) != child) {
      return absl::InternalError(absl::StrFormat("pid %d: waitpid: %s", child, strerror(errno)));
    }
    if (WIFEXITED(st) || WIFSIGNALED(st)) return RestorerFailure(child, ReadRest(status_fd), st);
    if (!WIFSTOPPED(st)) continue;
    if (!told_to_go) {
      char go = 1;
      WriteAll(go_fd, &go, 1);
      told_to_go = true;
    }
    long inject = 0;
    bool syscall_stop = WSTOPSIG(st) == (SIGTRAP | 0x80);
    if (syscall_stop) {
      user_regs_struct regs;
      ::ptrace(PTRACE_GETREGS, child, nullptr, &regs);
      if (phase == kToEntry) {
        if (static_cast<long>(regs.orig_rax) != SYS_rt_sigreturn) {
          return absl::InternalError(
              absl::StrFormat("pid %d: the restorer made syscall %d where rt_sigreturn was due",
                              child, regs.orig_rax));
        }
        phase = kToExit;
      } else if (phase == kToExit) {
        break;
      }
    } else if ((st >> 16) == 0) {
      siginfo_t si{};
      ::ptrace(PTRACE_GETSIGINFO, child, nullptr, &si);
      if (phase == kToTrap && WSTOPSIG(st) == SIGTRAP && si.si_code == SI_KERNEL) {
        phase = kToEntry;  // our int3: swallow it
      } else {
        inject = WSTOPSIG(st);  // a real signal (a fault in the restorer): deliver it
      }
    }
    long req = phase == kToTrap ? PTRACE_CONT : PTRACE_SYSCALL;
    if (::ptrace(static_cast<__ptrace_request>(req), child, nullptr,
                 reinterpret_cast<void*>(inject)) != 0) {
      return absl::InternalError(
          absl::StrFormat("pid %d: resuming the restorer: %s", child, strerror(errno)));
    }
  }
  auto task = ptrace::Task::Adopt(child);
  if (!task.ok()) return task.status();
  auto r = (*task)->SyscallAtIp(SYS_munmap, keep_start, keep_end - keep_start);
  if (!r.ok()) return r.status();
  if (*r != 0) {
    return absl::InternalError(absl::StrFormat("pid %d: removing the restorer's area: %s", child,
                                               strerror(static_cast<int>(-*r))));
  }
  return (*task)->Release(ptrace::Leave::kRunning);
}

// Reads the child's reports: an error from a plugin, or the jump into the
// restorer, which is then followed to its end.
absl::Status Watch(int status_fd, int go_fd, pid_t child) {
  // Wait for the first report, but notice if the task dies without one
  // (another process holding the pipe open would otherwise hide it).
  char first = 0;
  for (;;) {
    pollfd p{status_fd, POLLIN, 0};
    int r = poll(&p, 1, 200);
    if (r > 0) {
      ssize_t n = read(status_fd, &first, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int st = 0;
        if (waitpid(child, &st, 0) == child && WIFSIGNALED(st)) {
          return absl::InternalError(absl::StrFormat(
              "pid %d was killed by signal %d during the restore", child, WTERMSIG(st)));
        }
        return absl::InternalError(absl::StrFormat("pid %d died before restoring anything", child));
      }
      break;
    }
    int st;
    if (waitpid(child, &st, WNOHANG) == child) {
      return absl::InternalError(
          absl::StrFormat("pid %d died during the restore (%s %d) before it reported", child,
                          WIFSIGNALED(st) ? "signal" : "exit status",
                          WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st)));
    }
  }
  if (first == kError) return absl::InternalError(ReadRest(status_fd));
  if (first != kJump) return absl::InternalError(absl::StrFormat("pid %d: garbled status", child));
  uint64_t area[2];
  size_t got = 0;
  while (got < sizeof area) {
    ssize_t n = read(status_fd, reinterpret_cast<char*>(area) + got, sizeof area - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError(absl::StrFormat("pid %d: garbled status", child));
    got += static_cast<size_t>(n);
  }
  return FinishUnderPtrace(child, status_fd, go_fd, area[0], area[1]);
}

}  // namespace

absl::StatusOr<RestoreResult> Restore(const RestoreRequest& request) {
  auto t0 = std::chrono::steady_clock::now();
  // The task changes its working directory to its own while restoring, so
  // the images are found by absolute path.
  RestoreRequest req = request;
  char* real = realpath(request.images_dir.c_str(), nullptr);
  if (real == nullptr) {
    return absl::NotFoundError(
        absl::StrFormat("images directory %s: %s", request.images_dir, strerror(errno)));
  }
  req.images_dir = real;
  free(real);
  auto pid = RootPid(req.images_dir);
  if (!pid.ok()) return pid.status();
  int pipefd[2], gofd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrFormat("pipe: %s", strerror(errno)));
  }
  if (pipe2(gofd, O_CLOEXEC) != 0) {
    close(pipefd[0]);
    close(pipefd[1]);
    return absl::InternalError(absl::StrFormat("pipe: %s", strerror(errno)));
  }
  pid_t tid = *pid;
  clone_args ca{};
  ca.exit_signal = SIGCHLD;
  ca.set_tid = reinterpret_cast<uint64_t>(&tid);
  ca.set_tid_size = 1;
  long child = syscall(SYS_clone3, &ca, sizeof ca);
  // The dumped task may still be a zombie its parent has not reaped yet: it
  // goes away on its own, so give it a moment.
  for (int i = 0; i < 150 && child < 0 && errno == EEXIST; ++i) {
    auto st = proc::ReadStat(tid);
    if (!st.ok() || st->state != 'Z') break;
    usleep(20000);
    child = syscall(SYS_clone3, &ca, sizeof ca);
  }
  if (child < 0) {
    int e = errno;
    for (int fd : {pipefd[0], pipefd[1], gofd[0], gofd[1]}) close(fd);
    if (e == EEXIST) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "pid %d is in use by another process: cannot restore the task with its pid", tid));
    }
    return absl::PermissionDeniedError(absl::StrFormat("clone3 with pid %d: %s", tid, strerror(e)));
  }
  if (child == 0) {
    close(pipefd[0]);
    close(gofd[1]);
    RunChild(req, tid, pipefd[1], gofd[0]);
  }
  close(pipefd[1]);
  close(gofd[0]);
  absl::Status s = Watch(pipefd[0], gofd[1], static_cast<pid_t>(child));
  close(pipefd[0]);
  close(gofd[1]);
  if (!s.ok()) {
    // Nothing half-restored survives.
    kill(static_cast<pid_t>(child), SIGKILL);
    int status;
    waitpid(static_cast<pid_t>(child), &status, 0);
    return s;
  }
  RestoreResult r;
  r.pid = static_cast<pid_t>(child);
  r.restore_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count());
  if (req.on_running) {
    if (auto cb = req.on_running(r.pid); !cb.ok()) {
      // The caller could not record the task (e.g. its pidfile): the restore
      // failed, and a failed restore leaves nothing behind (criu kills the
      // tree when it cannot write the pidfile, too).
      kill(r.pid, SIGKILL);
      int status;
      waitpid(r.pid, &status, 0);
      return cb;
    }
  }
  log::Info("restore: pid %d runs (%d us)", r.pid, r.restore_us);
  return r;
}

}  // namespace crpp
