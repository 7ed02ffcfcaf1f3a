#include "core/restore/follow.h"

#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "core/proc/proc.h"
#include "core/restore/restore_task.h"
#include "restorer/restorer_args.h"

namespace crpp::restore_internal {
namespace {

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

// Reads /proc/TID/status for the thread group TID belongs to.
pid_t ThreadGroupOf(pid_t tid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", tid);
  FILE* f = fopen(path, "re");
  if (f == nullptr) return 0;
  char line[256];
  pid_t tgid = 0;
  while (fgets(line, sizeof line, f) != nullptr) {
    if (sscanf(line, "Tgid: %d", &tgid) == 1) break;
  }
  fclose(f);
  return tgid;
}

}  // namespace

std::string ReadRest(int fd, pid_t pid) {
  std::string got;
  char buf[4096];
  for (bool ended = false;;) {
    pollfd p{fd, POLLIN, 0};
    const int r = poll(&p, 1, ended ? 0 : 100);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      if (ended) return got;
      auto st = proc::ReadStat(pid);
      ended = !st.ok() || st->state == 'Z' || st->state == 'X';
      continue;
    }
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return got;
    got.append(buf, static_cast<size_t>(n));
  }
}

absl::Status RestorerFollower::Add(pid_t pid, size_t nr_threads, int status_fd,
                                   std::atomic<uint32_t>* go) {
  if (::ptrace(PTRACE_SEIZE, pid, nullptr,
               PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL | PTRACE_O_TRACECLONE) != 0) {
    return absl::InternalError(absl::StrFormat("pid %d: PTRACE_SEIZE: %s", pid, strerror(errno)));
  }
  if (::ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) != 0) {
    return absl::InternalError(
        absl::StrFormat("pid %d: PTRACE_INTERRUPT: %s", pid, strerror(errno)));
  }
  processes_.push_back(Process{pid, nr_threads, 0, status_fd, go});
  known_[pid] = Thread{processes_.size() - 1};
  ++active_;
  return absl::OkStatus();
}

void RestorerFollower::Track(pid_t tid, size_t process) {
  if (known_.count(tid)) return;
  known_[tid] = Thread{process};
  threads_.push_back(tid);
}

absl::StatusOr<size_t> RestorerFollower::Owner(pid_t tid) const {
  const pid_t tgid = ThreadGroupOf(tid);
  for (size_t i = 0; i < processes_.size(); ++i) {
    if (processes_[i].pid == tgid) return i;
  }
  return absl::InternalError(
      absl::StrFormat("pid %d changed state while the tree was being restored", tid));
}

absl::StatusOr<bool> RestorerFollower::Poll(bool block) {
  bool moved = false;
  while (active_ > 0) {
    // Peek first: only the changes of our threads are ours to collect.
    siginfo_t si{};
    const int options = WEXITED | WSTOPPED | WNOWAIT | __WALL | (block && !moved ? 0 : WNOHANG);
    if (waitid(P_ALL, 0, &si, options) != 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrFormat("waitid: %s", strerror(errno)));
    }
    if (si.si_pid == 0) break;  // nothing (more) for now
    if (auto s = Handle(si.si_pid); !s.ok()) return s;
    moved = true;
  }
  return moved;
}

// One stop (or end) of thread `tid`: each thread runs freely through the
// restorer to its int3 right before rt_sigreturn (trap_before_sigreturn),
// and is stepped from there to the syscall's exit, where it stays stopped.
absl::Status RestorerFollower::Handle(pid_t tid) {
  if (!known_.count(tid)) {
    auto owner = Owner(tid);
    if (!owner.ok()) return owner.status();
    Track(tid, *owner);
  }
  Thread& th = known_[tid];
  Process& p = processes_[th.process];
  int st;
  if (waitpid(tid, &st, __WALL) != tid) {
    return absl::InternalError(absl::StrFormat("pid %d: waitpid: %s", tid, strerror(errno)));
  }
  if (WIFEXITED(st) || WIFSIGNALED(st)) {
    // A thread that fails ends the whole process (exit_group): its report
    // is collected when the main thread is.
    if (tid == p.pid) return RestorerFailure(p.pid, ReadRest(p.status_fd, p.pid), st);
    if (th.phase == kDone && p.done-- == p.nr_threads + 1) ++active_;
    known_.erase(tid);
    return absl::OkStatus();
  }
  if (!WIFSTOPPED(st)) return absl::OkStatus();
  if (!p.told_to_go) {
    p.go->store(kGo);
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(p.go), FUTEX_WAKE, 1, nullptr, nullptr, 0);
    p.told_to_go = true;
  }
  long inject = 0;
  const int event = st >> 16;
  if (event == PTRACE_EVENT_CLONE) {
    unsigned long child = 0;
    ::ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &child);
    Track(static_cast<pid_t>(child), th.process);
  } else if (WSTOPSIG(st) == (SIGTRAP | 0x80)) {
    user_regs_struct regs;
    ::ptrace(PTRACE_GETREGS, tid, nullptr, &regs);
    if (th.phase == kToEntry) {
      if (static_cast<long>(regs.orig_rax) != SYS_rt_sigreturn) {
        return absl::InternalError(absl::StrFormat(
            "pid %d: the restorer made syscall %d where rt_sigreturn was due", tid, regs.orig_rax));
      }
      th.phase = kToExit;
    } else if (th.phase == kToExit) {
      th.phase = kDone;
      if (++p.done == p.nr_threads + 1) --active_;
      return absl::OkStatus();  // stays stopped here
    }
  } else if (event == 0) {
    siginfo_t sig{};
    ::ptrace(PTRACE_GETSIGINFO, tid, nullptr, &sig);
    if (th.phase == kToTrap && WSTOPSIG(st) == SIGTRAP && sig.si_code == SI_KERNEL) {
      th.phase = kToEntry;  // our int3: swallow it
    } else {
      inject = WSTOPSIG(st);  // a real signal (a fault in the restorer): deliver it
    }
  }
  const long req = th.phase == kToTrap ? PTRACE_CONT : PTRACE_SYSCALL;
  if (::ptrace(static_cast<__ptrace_request>(req), tid, nullptr, reinterpret_cast<void*>(inject)) !=
      0) {
    return absl::InternalError(
        absl::StrFormat("pid %d: resuming the restorer: %s", tid, strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace crpp::restore_internal
