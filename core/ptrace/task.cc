#include "core/ptrace/task.h"

#include <elf.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "core/log.h"

namespace crpp::ptrace {
namespace {

// "syscall; int3": the injected code. The int3 stops the task right after
// the syscall returns, with the result in rax.
constexpr uint8_t kSyscallTrap[] = {0x0f, 0x05, 0xcc};

constexpr uint64_t SigBit(int sig) { return 1ull << (sig - 1); }

// The signals the kernel forces on code we run: SIGTRAP (our int3) and those
// of a fault in it. When it forces a signal that the task blocks, the kernel
// also resets the task's action for it to SIG_DFL (force_sig_info_to_task),
// which would silently lose the task's handler. So these stay unblocked while
// we hold the task; one of them that another process sends meanwhile is held
// back and sent again by Release().
constexpr uint64_t kSynchronousSignals = SigBit(SIGTRAP) | SigBit(SIGSEGV) | SigBit(SIGBUS) |
                                         SigBit(SIGILL) | SigBit(SIGFPE) | SigBit(SIGSYS);
constexpr uint64_t kMaskWhileSeized = ~kSynchronousSignals;

// rflags' direction flag: the ABI wants it clear when a function is called.
constexpr uint64_t kDirectionFlag = 1ull << 10;

absl::Status Errno(pid_t tid, const char* what) {
  return absl::InternalError(absl::StrFormat("pid %d: %s: %s", tid, what, strerror(errno)));
}

Task::SyscallHook& TestSyscallHook() {
  static auto* hook = new Task::SyscallHook();
  return *hook;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Task>> Task::Seize(pid_t tid) {
  std::unique_ptr<Task> t(new Task(tid));
  if (auto s = t->BeginSeize(); !s.ok()) return s;
  if (auto s = t->FinishSeize(); !s.ok()) return s;
  return t;
}

absl::StatusOr<std::vector<std::unique_ptr<Task>>> Task::SeizeMany(const std::vector<pid_t>& tids) {
  std::vector<std::unique_ptr<Task>> begun;
  begun.reserve(tids.size());
  for (pid_t tid : tids) {
    std::unique_ptr<Task> t(new Task(tid));
    if (auto s = t->BeginSeize(); !s.ok()) {
      if (absl::IsNotFound(s)) continue;  // it ended meanwhile
      return s;
    }
    begun.push_back(std::move(t));
  }
  std::vector<std::unique_ptr<Task>> seized;
  seized.reserve(begun.size());
  for (size_t i = 0; i < begun.size(); ++i) {
    if (auto s = begun[i]->FinishSeize(); !s.ok()) {
      if (absl::IsNotFound(s)) continue;
      // The others are let go by their destructors, which need them in
      // their stop.
      for (size_t j = i + 1; j < begun.size(); ++j) (void)begun[j]->WaitStopped();
      return s;
    }
    seized.push_back(std::move(begun[i]));
  }
  return seized;
}

absl::Status Task::BeginSeize() {
  if (::ptrace(PTRACE_SEIZE, tid_, nullptr, nullptr) != 0) {
    if (errno == ESRCH) {
      return absl::NotFoundError(absl::StrFormat("pid %d: no such process", tid_));
    }
    return Errno(tid_, "PTRACE_SEIZE");
  }
  attached_ = true;
  if (::ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) != 0) {
    return Errno(tid_, "PTRACE_INTERRUPT");
  }
  return absl::OkStatus();
}

absl::Status Task::FinishSeize() {
  if (auto s = WaitStopped(); !s.ok()) return s;
  // A seized task reports PTRACE_INTERRUPT's stop with SIGTRAP, but with
  // the signal that stopped its group when it was in a group stop already:
  // told without a read of /proc (and without its race) which it was.
  was_stopped_ = stop_signal_ != SIGTRAP;
  if (auto s = Capture(); !s.ok()) return s;
  log::Debug("pid %d: seized at rip %#x%s", tid_, saved_regs_.rip,
             was_stopped_ ? " (was stopped)" : "");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Task>> Task::Adopt(pid_t tid) {
  std::unique_ptr<Task> t(new Task(tid));
  t->attached_ = true;
  if (auto s = t->Capture(); !s.ok()) return s;
  return t;
}

absl::Status Task::Capture() {
  if (::ptrace(PTRACE_GETREGS, tid_, nullptr, &saved_regs_) != 0) {
    return Errno(tid_, "PTRACE_GETREGS");
  }
  if (::ptrace(PTRACE_GETSIGMASK, tid_, sizeof(uint64_t), &saved_sigmask_) != 0) {
    return Errno(tid_, "PTRACE_GETSIGMASK");
  }
  // From here on Release() has true values to put back.
  captured_ = true;
  // No signal may reach the task while syscalls run inside it.
  uint64_t mask = kMaskWhileSeized;
  if (::ptrace(PTRACE_SETSIGMASK, tid_, sizeof(uint64_t), &mask) != 0) {
    return Errno(tid_, "PTRACE_SETSIGMASK");
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Task::SyscallAtIp(long nr, uint64_t a1, uint64_t a2, uint64_t a3) {
  if (!attached_) return absl::FailedPreconditionError("task is not seized");
  if (running_) return absl::FailedPreconditionError("task runs code of ours");
  uint64_t args[6] = {a1, a2, a3, 0, 0, 0};
  return RunAtIp(nr, args);
}

absl::Status Task::Stop() {
  if (::ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) != 0)
    return Errno(tid_, "PTRACE_INTERRUPT");
  return WaitStopped();
}

absl::Status Task::WaitStopped() {
  // A signal may be on its way: let it be delivered (as it would have been)
  // until the task reports the stop we asked for.
  for (int i = 0; i < 64; ++i) {
    int status;
    if (waitpid(tid_, &status, __WALL) != tid_) return Errno(tid_, "waitpid");
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      attached_ = false;
      return absl::NotFoundError(absl::StrFormat("pid %d exited while being seized", tid_));
    }
    if (!WIFSTOPPED(status)) continue;
    int sig = WSTOPSIG(status);
    if ((status >> 16) == PTRACE_EVENT_STOP) {
      stop_signal_ = sig;
      return absl::OkStatus();
    }
    if (::ptrace(PTRACE_CONT, tid_, nullptr, reinterpret_cast<void*>(static_cast<long>(sig))) !=
        0) {
      return Errno(tid_, "PTRACE_CONT");
    }
    if (::ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) != 0) {
      return Errno(tid_, "PTRACE_INTERRUPT");
    }
  }
  return absl::DeadlineExceededError(absl::StrFormat("pid %d: does not stop", tid_));
}

absl::StatusOr<std::string> Task::ReadXstate(size_t size) const {
  std::string buf(size, '\0');
  iovec iov{buf.data(), buf.size()};
  if (::ptrace(PTRACE_GETREGSET, tid_, NT_X86_XSTATE, &iov) != 0) {
    return Errno(tid_, "PTRACE_GETREGSET(NT_X86_XSTATE)");
  }
  buf.resize(iov.iov_len);
  return buf;
}

void Task::Defer(int sig) {
  log::Warn("pid %d: signal %d arrived while injected code ran: sent again at release", tid_, sig);
  deferred_signals_ |= SigBit(sig);
}

// What one wait status means while code of ours runs: true for its int3,
// false when the task goes on (continued here), or why it never will.
absl::StatusOr<bool> Task::OnStop(int status) {
  if (WIFEXITED(status) || WIFSIGNALED(status)) {
    attached_ = running_ = false;
    return absl::AbortedError(absl::StrFormat("pid %d died while running injected code", tid_));
  }
  if (!WIFSTOPPED(status)) return false;
  const int sig = WSTOPSIG(status);
  long pass_on = 0;
  if ((status >> 16) == 0) {
    // A signal on its way in: SIGSTOP, or one of kSynchronousSignals (every
    // other signal is blocked).
    if (sig == SIGSTOP) {
      // Passed on, or it would be lost: the task enters a group stop (and
      // reports it, see below) and stops again when it is let go.
      pass_on = sig;
    } else {
      siginfo_t si{};
      if (::ptrace(PTRACE_GETSIGINFO, tid_, nullptr, &si) != 0) {
        return Errno(tid_, "PTRACE_GETSIGINFO");
      }
      if (si.si_code <= 0) {
        // Sent by a process (kill, tgkill, sigqueue), not caused by our code.
        Defer(sig);
      } else if (sig == SIGTRAP && si.si_code == SI_KERNEL) {
        running_ = false;  // our int3
        return true;
      } else {
        // A fault. Not resumed: it would recur. The registers get replaced
        // and the signal is dropped when the task next goes on.
        running_ = false;
        user_regs_struct r{};
        ::ptrace(PTRACE_GETREGS, tid_, nullptr, &r);
        return absl::InternalError(absl::StrFormat(
            "pid %d: signal %d (%s, si_code %d) in injected code at ip %#x, address %p", tid_, sig,
            strsignal(sig), si.si_code, r.rip, si.si_addr));
      }
    }
  }
  // A group stop or PTRACE_INTERRUPT's stop: keep going; a group stop stays
  // in effect, so the task stops again once we detach.
  if (::ptrace(PTRACE_CONT, tid_, nullptr, reinterpret_cast<void*>(pass_on)) != 0) {
    return Errno(tid_, "PTRACE_CONT");
  }
  return false;
}

absl::Status Task::WaitTrap() {
  if (!running_) return absl::FailedPreconditionError("no injected code runs");
  for (;;) {
    int status;
    if (waitpid(tid_, &status, __WALL) != tid_) return Errno(tid_, "waitpid");
    auto trapped = OnStop(status);
    if (!trapped.ok()) return trapped.status();
    if (*trapped) return absl::OkStatus();
  }
}

absl::StatusOr<bool> Task::PollTrap() {
  if (!running_) return absl::FailedPreconditionError("no injected code runs");
  for (;;) {
    int status;
    pid_t r = waitpid(tid_, &status, __WALL | WNOHANG);
    if (r == 0) return false;
    if (r != tid_) return Errno(tid_, "waitpid");
    auto trapped = OnStop(status);
    if (!trapped.ok() || *trapped) return trapped;
  }
}

absl::Status Task::Interrupt() {
  if (!running_) return absl::OkStatus();
  if (::ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) != 0) {
    return Errno(tid_, "PTRACE_INTERRUPT");
  }
  // Any stop will do: the registers are about to be replaced. If it is not
  // the one PTRACE_INTERRUPT asked for, that one comes at the next resume,
  // and OnStop() continues past it.
  for (;;) {
    int status;
    if (waitpid(tid_, &status, __WALL) != tid_) return Errno(tid_, "waitpid");
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      attached_ = running_ = false;
      return absl::AbortedError(absl::StrFormat("pid %d died while running injected code", tid_));
    }
    if (!WIFSTOPPED(status)) continue;
    running_ = false;
    // A signal another process sent, stopped at on its way in, would be
    // dropped by the next resume.
    siginfo_t si{};
    if ((status >> 16) == 0 && ::ptrace(PTRACE_GETSIGINFO, tid_, nullptr, &si) == 0 &&
        si.si_code <= 0) {
      Defer(WSTOPSIG(status));
    }
    return absl::OkStatus();
  }
}

absl::Status Task::Go(const user_regs_struct& regs) {
  if (::ptrace(PTRACE_SETREGS, tid_, nullptr, &regs) != 0) return Errno(tid_, "PTRACE_SETREGS");
  if (::ptrace(PTRACE_CONT, tid_, nullptr, nullptr) != 0) return Errno(tid_, "PTRACE_CONT");
  running_ = true;
  return absl::OkStatus();
}

absl::Status Task::Start(uint64_t rip, uint64_t rsp, uint64_t rdi) {
  if (!attached_) return absl::FailedPreconditionError("task is not seized");
  if (running_) return absl::FailedPreconditionError("task runs code of ours already");
  user_regs_struct r = saved_regs_;
  r.rip = rip;
  r.rsp = rsp;
  r.rdi = rdi;
  r.eflags &= ~kDirectionFlag;
  r.orig_rax = static_cast<uint64_t>(-1);  // no syscall restart (see RunAt)
  return Go(r);
}

absl::Status Task::Run(uint64_t rip, uint64_t rsp, uint64_t rdi) {
  if (auto s = Start(rip, rsp, rdi); !s.ok()) return s;
  return WaitTrap();
}

absl::StatusOr<int64_t> Task::RunAt(uint64_t code_addr, long nr, const uint64_t (&a)[6]) {
  user_regs_struct r = saved_regs_;
  r.rax = static_cast<uint64_t>(nr);
  r.rdi = a[0];
  r.rsi = a[1];
  r.rdx = a[2];
  r.r10 = a[3];
  r.r8 = a[4];
  r.r9 = a[5];
  r.rip = code_addr;
  // orig_rax = -1: the kernel must not treat the stop as an interrupted
  // syscall and rewind rip to restart it.
  r.orig_rax = static_cast<uint64_t>(-1);
  if (auto s = Go(r); !s.ok()) return s;
  if (auto s = WaitTrap(); !s.ok()) return s;
  user_regs_struct out;
  if (::ptrace(PTRACE_GETREGS, tid_, nullptr, &out) != 0) return Errno(tid_, "PTRACE_GETREGS");
  return static_cast<int64_t>(out.rax);
}

absl::StatusOr<int64_t> Task::RunAtIp(long nr, const uint64_t (&args)[6]) {
  // The word at rip is saved, replaced by "syscall; int3" and put back. Used
  // only to map and unmap the scratch page, which holds the code afterwards.
  uint64_t rip = saved_regs_.rip;
  errno = 0;
  long orig = ::ptrace(PTRACE_PEEKTEXT, tid_, rip, nullptr);
  if (errno != 0) return Errno(tid_, "PTRACE_PEEKTEXT");
  long patched = orig;
  memcpy(&patched, kSyscallTrap, sizeof kSyscallTrap);
  if (::ptrace(PTRACE_POKETEXT, tid_, rip, patched) != 0) return Errno(tid_, "PTRACE_POKETEXT");
  auto res = RunAt(rip, nr, args);
  if (::ptrace(PTRACE_POKETEXT, tid_, rip, orig) != 0 && res.ok()) {
    return Errno(tid_, "PTRACE_POKETEXT (undo)");
  }
  return res;
}

absl::Status Task::MapScratch() {
  uint64_t args[6] = {0,
                      4096,
                      PROT_READ | PROT_WRITE | PROT_EXEC,
                      MAP_PRIVATE | MAP_ANONYMOUS,
                      static_cast<uint64_t>(-1),
                      0};
  auto res = RunAtIp(SYS_mmap, args);
  if (!res.ok()) return res.status();
  if (*res < 0 && *res > -4096) {
    return absl::InternalError(
        absl::StrFormat("pid %d: mmap of a scratch page failed: %s", tid_, strerror(-*res)));
  }
  scratch_ = static_cast<uint64_t>(*res);
  long code = 0;
  memcpy(&code, kSyscallTrap, sizeof kSyscallTrap);
  if (::ptrace(PTRACE_POKETEXT, tid_, scratch_, code) != 0) return Errno(tid_, "PTRACE_POKETEXT");
  return absl::OkStatus();
}

void Task::SetSyscallHookForTesting(SyscallHook hook) { TestSyscallHook() = std::move(hook); }

absl::StatusOr<int64_t> Task::Syscall(long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                                      uint64_t a5, uint64_t a6) {
  if (!attached_) return absl::FailedPreconditionError("task is not seized");
  if (const SyscallHook& hook = TestSyscallHook()) {
    if (absl::Status s = hook(tid_, nr); !s.ok()) return s;
  }
  if (auto s = MappedScratch(); !s.ok()) return s.status();
  uint64_t args[6] = {a1, a2, a3, a4, a5, a6};
  return RunAt(scratch_, nr, args);
}

absl::StatusOr<int64_t> Task::RunStub(uint64_t addr, uint64_t arg, long nr) {
  if (!attached_) return absl::FailedPreconditionError("task is not seized");
  if (const SyscallHook& hook = TestSyscallHook()) {
    if (absl::Status s = hook(tid_, nr); !s.ok()) return s;
  }
  uint64_t args[6] = {arg, 0, 0, 0, 0, 0};
  return RunAt(addr, 0, args);
}

absl::StatusOr<uint64_t> Task::MappedScratch() {
  if (!attached_) return absl::FailedPreconditionError("task is not seized");
  if (running_) return absl::FailedPreconditionError("task runs code of ours");
  if (scratch_ == 0) {
    if (auto s = MapScratch(); !s.ok()) return s;
  }
  return scratch();
}

absl::Status Task::ShareScratch(Task& owner) {
  if (scratch_ != 0) return absl::FailedPreconditionError("the task has a scratch page already");
  auto page = owner.MappedScratch();
  if (!page.ok()) return page.status();
  scratch_ = owner.scratch_;
  scratch_shared_ = true;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Task::SyscallOk(const char* what, long nr, uint64_t a1, uint64_t a2,
                                         uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6) {
  auto r = Syscall(nr, a1, a2, a3, a4, a5, a6);
  if (!r.ok()) return r.status();
  if (*r < 0 && *r > -4096) {
    return absl::InternalError(absl::StrFormat("pid %d: %s: %s", tid_, what, strerror(-*r)));
  }
  return static_cast<uint64_t>(*r);
}

absl::Status Task::ReadMemory(uint64_t addr, void* dst, size_t len) const {
  iovec local{dst, len};
  iovec remote{reinterpret_cast<void*>(addr), len};
  ssize_t n = process_vm_readv(tid_, &local, 1, &remote, 1, 0);
  if (n != static_cast<ssize_t>(len)) {
    return absl::InternalError(absl::StrFormat("pid %d: cannot read %d bytes at %#x: %s", tid_, len,
                                               addr, n < 0 ? strerror(errno) : "short read"));
  }
  return absl::OkStatus();
}

absl::Status Task::WriteMemory(uint64_t addr, const void* src, size_t len) const {
  iovec local{const_cast<void*>(src), len};
  iovec remote{reinterpret_cast<void*>(addr), len};
  ssize_t n = process_vm_writev(tid_, &local, 1, &remote, 1, 0);
  if (n != static_cast<ssize_t>(len)) {
    return absl::InternalError(absl::StrFormat("pid %d: cannot write %d bytes at %#x: %s", tid_,
                                               len, addr, n < 0 ? strerror(errno) : "short"));
  }
  return absl::OkStatus();
}

absl::Status Task::DropScratch() {
  absl::Status status;
  if (attached_ && !running_ && scratch_ != 0 && !scratch_shared_) {
    uint64_t args[6] = {scratch_, 4096, 0, 0, 0, 0};
    auto res = RunAtIp(SYS_munmap, args);
    if (!res.ok()) status = res.status();
  }
  scratch_ = 0;
  scratch_shared_ = false;
  return status;
}

absl::Status Task::Release(Leave how) {
  if (!attached_) return absl::OkStatus();
  absl::Status status = Interrupt();
  if (!attached_) return status;
  if (how == Leave::kKilled) {
    // Nothing to undo in a process that goes (and another thread's kill may
    // have taken it already).
    kill(tid_, SIGKILL);
    int st;
    waitpid(tid_, &st, __WALL);
    attached_ = false;
    scratch_ = 0;
    return status;
  }
  if (absl::Status dropped = DropScratch(); !dropped.ok() && status.ok()) status = dropped;
  // Registers and mask are only put back when they were read: zeros would
  // wreck the task.
  if (captured_ && ::ptrace(PTRACE_SETSIGMASK, tid_, sizeof(uint64_t), &saved_sigmask_) != 0 &&
      status.ok()) {
    status = Errno(tid_, "PTRACE_SETSIGMASK (restore)");
  }
  if (captured_ && ::ptrace(PTRACE_SETREGS, tid_, nullptr, &saved_regs_) != 0 && status.ok()) {
    status = Errno(tid_, "PTRACE_SETREGS (restore)");
  }
  // Pending again, under the task's own mask, before it runs.
  for (int sig = 1; sig <= 64; ++sig) {
    if ((deferred_signals_ & SigBit(sig)) && syscall(SYS_tkill, tid_, sig) != 0 && status.ok()) {
      status = Errno(tid_, "tkill (a deferred signal)");
    }
  }
  deferred_signals_ = 0;
  long sig = (how == Leave::kStopped && !was_stopped_) ? SIGSTOP : 0;
  if (::ptrace(PTRACE_DETACH, tid_, nullptr, reinterpret_cast<void*>(sig)) != 0 && status.ok()) {
    status = Errno(tid_, "PTRACE_DETACH");
  }
  attached_ = false;
  return status;
}

Task::~Task() {
  if (attached_) {
    absl::Status s = Release(Leave::kRunning);
    if (!s.ok()) log::Error("pid %d: could not release cleanly: %s", tid_, s.ToString());
  }
}

}  // namespace crpp::ptrace
