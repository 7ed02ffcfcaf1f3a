#include "core/ptrace/task.h"

#include <elf.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_format.h"
#include "core/log.h"

namespace crpp::ptrace {
namespace {

// "syscall; int3": the injected code. The int3 stops the task right after
// the syscall returns, with the result in rax.
constexpr uint8_t kSyscallTrap[] = {0x0f, 0x05, 0xcc};

absl::Status Errno(pid_t tid, const char* what) {
  return absl::InternalError(absl::StrFormat("pid %d: %s: %s", tid, what, strerror(errno)));
}

Task::SyscallHook& TestSyscallHook() {
  static auto* hook = new Task::SyscallHook();
  return *hook;
}

bool InGroupStop(pid_t tid) {
  std::ifstream status(absl::StrFormat("/proc/%d/status", tid));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("State:", 0) == 0) return line.find('T') != std::string::npos;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Task>> Task::Seize(pid_t tid) {
  std::unique_ptr<Task> t(new Task(tid));
  t->was_stopped_ = InGroupStop(tid);
  if (::ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
    if (errno == ESRCH) return absl::NotFoundError(absl::StrFormat("pid %d: no such process", tid));
    return Errno(tid, "PTRACE_SEIZE");
  }
  t->attached_ = true;
  if (auto s = t->Stop(); !s.ok()) return s;
  if (::ptrace(PTRACE_GETREGS, tid, nullptr, &t->saved_regs_) != 0) {
    return Errno(tid, "PTRACE_GETREGS");
  }
  if (::ptrace(PTRACE_GETSIGMASK, tid, sizeof(uint64_t), &t->saved_sigmask_) != 0) {
    return Errno(tid, "PTRACE_GETSIGMASK");
  }
  // No signal may reach the task while syscalls run inside it.
  uint64_t all = ~0ull;
  if (::ptrace(PTRACE_SETSIGMASK, tid, sizeof(uint64_t), &all) != 0) {
    return Errno(tid, "PTRACE_SETSIGMASK");
  }
  log::Debug("pid %d: seized at rip %#x%s", tid, t->saved_regs_.rip,
             t->was_stopped_ ? " (was stopped)" : "");
  return t;
}

absl::StatusOr<std::unique_ptr<Task>> Task::Adopt(pid_t tid) {
  std::unique_ptr<Task> t(new Task(tid));
  t->attached_ = true;
  if (::ptrace(PTRACE_GETREGS, tid, nullptr, &t->saved_regs_) != 0) {
    return Errno(tid, "PTRACE_GETREGS");
  }
  if (::ptrace(PTRACE_GETSIGMASK, tid, sizeof(uint64_t), &t->saved_sigmask_) != 0) {
    return Errno(tid, "PTRACE_GETSIGMASK");
  }
  uint64_t all = ~0ull;
  if (::ptrace(PTRACE_SETSIGMASK, tid, sizeof(uint64_t), &all) != 0) {
    return Errno(tid, "PTRACE_SETSIGMASK");
  }
  return t;
}

absl::StatusOr<int64_t> Task::SyscallAtIp(long nr, uint64_t a1, uint64_t a2, uint64_t a3) {
  if (!attached_) return absl::FailedPreconditionError("task is not seized");
  uint64_t args[6] = {a1, a2, a3, 0, 0, 0};
  return RunAtIp(nr, args);
}

absl::Status Task::Stop() {
  if (::ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) != 0)
    return Errno(tid_, "PTRACE_INTERRUPT");
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
    if ((status >> 16) == PTRACE_EVENT_STOP) return absl::OkStatus();
    int sig = WSTOPSIG(status);
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

absl::Status Task::WaitTrap() {
  for (;;) {
    int status;
    if (waitpid(tid_, &status, __WALL) != tid_) return Errno(tid_, "waitpid");
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      attached_ = false;
      return absl::AbortedError(absl::StrFormat("pid %d died during an injected syscall", tid_));
    }
    if (!WIFSTOPPED(status)) continue;
    if (WSTOPSIG(status) == SIGTRAP && (status >> 16) == 0) return absl::OkStatus();
    // A group stop (SIGSTOP cannot be blocked): keep going, it stays pending
    // for after the dump.
    if (::ptrace(PTRACE_CONT, tid_, nullptr, nullptr) != 0) return Errno(tid_, "PTRACE_CONT");
  }
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
  if (::ptrace(PTRACE_SETREGS, tid_, nullptr, &r) != 0) return Errno(tid_, "PTRACE_SETREGS");
  if (::ptrace(PTRACE_CONT, tid_, nullptr, nullptr) != 0) return Errno(tid_, "PTRACE_CONT");
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
  if (scratch_ == 0) {
    if (auto s = MapScratch(); !s.ok()) return s;
  }
  uint64_t args[6] = {a1, a2, a3, a4, a5, a6};
  return RunAt(scratch_, nr, args);
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

absl::Status Task::Release(Leave how) {
  if (!attached_) return absl::OkStatus();
  absl::Status status;
  if (scratch_ != 0) {
    uint64_t args[6] = {scratch_, 4096, 0, 0, 0, 0};
    auto res = RunAtIp(SYS_munmap, args);
    if (!res.ok()) status = res.status();
    scratch_ = 0;
  }
  if (how == Leave::kKilled) {
    kill(tid_, SIGKILL);
    int st;
    waitpid(tid_, &st, __WALL);
    attached_ = false;
    return status;
  }
  if (::ptrace(PTRACE_SETSIGMASK, tid_, sizeof(uint64_t), &saved_sigmask_) != 0 && status.ok()) {
    status = Errno(tid_, "PTRACE_SETSIGMASK (restore)");
  }
  if (::ptrace(PTRACE_SETREGS, tid_, nullptr, &saved_regs_) != 0 && status.ok()) {
    status = Errno(tid_, "PTRACE_SETREGS (restore)");
  }
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
