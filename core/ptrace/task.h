// A seized task: ptrace control of one thread of a process being dumped, and
// syscalls run inside it (what compel calls "infection", done here with
// single injected syscalls).
//
// Lifecycle: Seize() stops the thread with PTRACE_SEIZE + PTRACE_INTERRUPT and
// blocks its signals so nothing is delivered while we work (all but the few
// the kernel forces on code we run: one of those that another process sends
// meanwhile is held back and sent again, see kSynchronousSignals in task.cc);
// Release() puts back its signal mask and registers and then detaches
// (leaving it running or stopped) or kills it. The destructor releases a task
// that was not released, leaving it running: a failed dump never leaves a
// target stopped or changed.
//
// Besides single syscalls, code of ours mapped in the task (the parasite,
// core/infect) can run on the thread: Start() / PollTrap() / WaitTrap() /
// Interrupt().
#ifndef CRPP_CORE_PTRACE_TASK_H_
#define CRPP_CORE_PTRACE_TASK_H_

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace crpp::ptrace {

enum class Leave { kRunning, kStopped, kKilled };

class Task {
 public:
  // Seizes and stops `tid`. Fails (leaving the task untouched) if it cannot.
  static absl::StatusOr<std::unique_ptr<Task>> Seize(pid_t tid);
  // Seizes the threads `tids` side by side: every one is seized and asked to
  // stop before the first stop is waited for, so they stop in parallel.
  // Threads that end meanwhile are left out; on failure every thread seized
  // is let go as it was.
  static absl::StatusOr<std::vector<std::unique_ptr<Task>>> SeizeMany(
      const std::vector<pid_t>& tids);
  // Takes over a task this process already traces and that is stopped now
  // (e.g. at a syscall stop): its current registers and mask become the ones
  // Release() puts back.
  static absl::StatusOr<std::unique_ptr<Task>> Adopt(pid_t tid);
  ~Task();
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  pid_t tid() const { return tid_; }
  // The registers and signal mask as they were when the task was seized.
  const user_regs_struct& regs() const { return saved_regs_; }
  uint64_t blocked_signals() const { return saved_sigmask_; }
  // True if the task was in a group stop (SIGSTOP'ed) before we seized it.
  bool was_stopped() const { return was_stopped_; }

  // The task's extended state (xsave layout), `size` bytes from CPUID.
  absl::StatusOr<std::string> ReadXstate(size_t size) const;

  // Runs syscall `nr` with up to six arguments inside the task and returns
  // its raw result (negative errno on failure, as the kernel returns it).
  absl::StatusOr<int64_t> Syscall(long nr, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0,
                                  uint64_t a4 = 0, uint64_t a5 = 0, uint64_t a6 = 0);
  // Like Syscall, but a negative result becomes an error naming `what`.
  absl::StatusOr<uint64_t> SyscallOk(const char* what, long nr, uint64_t a1 = 0, uint64_t a2 = 0,
                                     uint64_t a3 = 0, uint64_t a4 = 0, uint64_t a5 = 0,
                                     uint64_t a6 = 0);

  // Runs a stub of ours written in the task's scratch page (at `addr`, a
  // few syscalls in a row ending in int3) with rdi = `arg` and the other
  // registers of seize time, and returns what it leaves in rax. One
  // injection instead of one per syscall; counts as one injected syscall
  // (`nr`, its first) for the test hook.
  absl::StatusOr<int64_t> RunStub(uint64_t addr, uint64_t arg, long nr);

  // Runs one syscall from the task's own code (the instruction bytes at its
  // ip are borrowed and put back), without mapping the scratch page.
  absl::StatusOr<int64_t> SyscallAtIp(long nr, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0);

  // Runs code of ours that is mapped in the task (a parasite blob): the
  // registers are the ones of seize time but rip, rsp and rdi, with the
  // direction flag cleared and no syscall to restart; the code ends with an
  // int3. Start() lets the task go and returns at once; while the code runs,
  // only PollTrap(), WaitTrap(), Interrupt() and Release() may be called.
  absl::Status Start(uint64_t rip, uint64_t rsp, uint64_t rdi);
  // Waits until the started code stops at its int3. If it faults instead
  // (SIGSEGV, SIGILL, ...), the error names the signal and where, and the
  // task is left stopped there (the signal is never delivered); the task's
  // death is an error too. Either way the code no longer runs afterwards.
  absl::Status WaitTrap();
  // WaitTrap() without blocking: true once stopped at the int3, false while
  // the code still runs.
  absl::StatusOr<bool> PollTrap();
  // Start() and WaitTrap().
  absl::Status Run(uint64_t rip, uint64_t rsp, uint64_t rdi);
  // Stops started code wherever it is (nothing to do when none runs).
  absl::Status Interrupt();
  bool running() const { return running_; }

  // A page of memory mapped in the task for syscall arguments and results.
  // Valid after the first Syscall() (which maps it), or MappedScratch().
  uint64_t scratch() const { return scratch_ + kScratchDataOffset; }
  // scratch(), mapping the page first if no Syscall() did yet.
  absl::StatusOr<uint64_t> MappedScratch();
  static constexpr size_t kScratchDataSize = 3072;
  // Unmaps the scratch page (if this task mapped it) by a syscall run at the
  // task's own ip, whose code is patched for the time of it: every thread of
  // the process must still be stopped then, or one could run into the patch.
  // Release() does it too; ReleaseAll-style callers drop the scratch of all
  // threads of a process before they let the first one go.
  absl::Status DropScratch();
  // Makes Syscall() use `owner`'s scratch page (mapping it first if needed)
  // instead of mapping one: for a thread of the same process, which shares
  // the address space. `owner` unmaps the page at its own Release(), so it
  // is released after this task.
  absl::Status ShareScratch(Task& owner);
  absl::Status ReadMemory(uint64_t addr, void* dst, size_t len) const;
  absl::Status WriteMemory(uint64_t addr, const void* src, size_t len) const;

  // Undoes everything (scratch page, signal mask, registers) and leaves the
  // task as asked. After it, the object is inert.
  absl::Status Release(Leave how);

  // For tests only; unset by default. Called (with the task's tid and the
  // syscall number) whenever Syscall() is about to run a syscall in a task; an
  // error it returns becomes Syscall()'s result before anything reaches the
  // task, as if a ptrace request had failed. Tests count the calls to fail
  // the Nth injected syscall of a dump, or act at a chosen point of it (e.g.
  // send the target a signal). An empty function removes the hook. Not
  // thread-safe: set it while no Task is in use.
  using SyscallHook = std::function<absl::Status(pid_t tid, long nr)>;
  static void SetSyscallHookForTesting(SyscallHook hook);

 private:
  explicit Task(pid_t tid) : tid_(tid) {}
  absl::Status Stop();
  // The second half of Stop(), once PTRACE_INTERRUPT was sent.
  absl::Status WaitStopped();
  // PTRACE_SEIZE + PTRACE_INTERRUPT, without waiting for the stop.
  absl::Status BeginSeize();
  // Waits for the stop BeginSeize asked for and captures the task's state.
  absl::Status FinishSeize();
  // Saves the task's registers and signal mask and blocks its signals.
  absl::Status Capture();
  absl::Status MapScratch();
  absl::StatusOr<int64_t> RunAt(uint64_t code_addr, long nr, const uint64_t (&args)[6]);
  absl::StatusOr<int64_t> RunAtIp(long nr, const uint64_t (&args)[6]);
  absl::Status Go(const user_regs_struct& regs);
  absl::StatusOr<bool> OnStop(int wait_status);
  void Defer(int sig);

  static constexpr size_t kScratchDataOffset = 1024;

  pid_t tid_;
  bool attached_ = false;
  bool captured_ = false;  // saved_regs_ and saved_sigmask_ hold the task's values
  bool was_stopped_ = false;
  int stop_signal_ = 0;  // of the PTRACE_EVENT_STOP WaitStopped() saw last
  user_regs_struct saved_regs_{};
  uint64_t saved_sigmask_ = 0;
  uint64_t scratch_ = 0;         // page with "syscall; int3" at its start
  bool scratch_shared_ = false;  // scratch_ is another task's (ShareScratch)
  bool running_ = false;         // code of ours runs in the task (Go() until it stops)
  // Signals another process sent while we had the task, to send again at
  // Release() (see kSynchronousSignals in task.cc): a bit per signal.
  uint64_t deferred_signals_ = 0;
};

}  // namespace crpp::ptrace

#endif  // CRPP_CORE_PTRACE_TASK_H_
