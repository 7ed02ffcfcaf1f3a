// Infection: running the parasite blob (//parasite:parasite_blob) inside a
// seized task, to ask it what only the task itself can tell, in one round
// trip instead of a hundred injected syscalls, and to have it hand over its
// pages without a copy (vmsplice). What CRIU's compel does.
//
//   auto task = ptrace::Task::Seize(pid);                 // stopped, signals blocked
//   auto parasite = infect::Parasite::Infect(**task);     // nothing left on failure
//   auto state = (*parasite)->GetTaskState();             // sigactions, itimers, rlimits, ...
//   (*parasite)->DumpPages(ranges, pages_fd);             // zero-copy into pages-N.img
//   (*parasite)->Cure();                                  // the task as it was
//   (*task)->Release(ptrace::Leave::kRunning);            // registers and mask back
//
// How it gets in (each step an injected syscall in the task, see Infect()):
// the TASK creates a memfd, sizes it and maps it MAP_SHARED RWX; the engine
// takes that fd with pidfd_getfd and maps the same memory; the task's fd is
// closed, so only the mapping remains. The engine copies the blob there,
// relocated for the task's address of the area, with a control block, a
// stack and a data area after it (see Layout in parasite.cc). A socket pair
// and a pipe are made the same way: created in the task, the engine's ends
// taken with pidfd_getfd and closed in the task. Then the task's thread is
// started at the blob's entry (ptrace::Task::Start) and says HELLO.
//
// Why the task creates the memfd rather than opening the engine's through
// /proc/<engine>/fd/N: a task of another user may not open a root-owned
// process's fds, and one in another pid namespace does not see the engine's
// pid at all. pidfd_getfd needs only the ptrace access we have.
//
// The protocol (parasite/parasite_protocol.h): fixed-size messages on an
// AF_UNIX SOCK_SEQPACKET socket pair, one reply per command; bulk results in
// the shared data area; pages through the pipe. While a command runs, the
// engine also watches the task: a parasite that faults or dies is reported
// within kPollMs, never waited on forever.
//
// Nothing is left behind: Cure() (and every failure of Infect(), and the
// destructor of a Parasite not cured) ends the parasite (FINI, or interrupts
// it), closes the fds the task got and unmaps the area in the task. The
// registers and signal mask are the Task's to put back (Release()); the
// parasite touches only the general-purpose registers (it is built with
// -mgeneral-regs-only) and, between commands, no memory but its own area.
//
// One Parasite per Task at a time; the Task must outlive it and must not be
// used for anything else (Syscall(), ...) while the parasite runs, i.e.
// between Infect() and Cure().
//
// Limits, shared with injected syscalls (each runs the thread too):
// - Running the thread makes the kernel rewrite its rseq area (cpu_id, ...),
//   as after any run; a dump sees those fields as the parasite left them.
// - The int3 that ends the parasite makes the kernel reset a task's SIGTRAP
//   action to SIG_DFL if it was SIG_IGN (a handler is kept: see
//   kSynchronousSignals in core/ptrace/task.cc); a fault of the parasite (a
//   bug) does the same for that signal.
// - A task under a seccomp filter may be refused the parasite's syscalls
//   (PTRACE_O_SUSPEND_SECCOMP is not used yet); the dump refuses such tasks.
// - Per-thread facts (sigaltstack, PR_GET_TID_ADDRESS, PR_GET_PDEATHSIG, the
//   timers of a thread) are the seized thread's; the other threads of the
//   process must be stopped by the caller.
#ifndef CRPP_CORE_INFECT_PARASITE_H_
#define CRPP_CORE_INFECT_PARASITE_H_

#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/infect/page_drain.h"
#include "core/ptrace/task.h"

struct crpp_parasite_msg;
struct crpp_parasite_ctl;

namespace crpp::infect {

// Pages [start, start + pages * 4096) of the task.
struct PageRange {
  uint64_t start;
  uint64_t pages;
};

// The kernel's sigaction (rt_sigaction), not libc's.
struct SigAction {
  uint64_t handler;
  uint64_t flags;
  uint64_t restorer;
  uint64_t mask;
};

// What GetTaskState() reads inside the task, each field from the syscall
// named beside it.
struct TaskState {
  std::array<SigAction, 64> sigactions;  // [signal - 1], rt_sigaction; SIGKILL/SIGSTOP too
  std::array<itimerval, 3> itimers;      // [ITIMER_REAL/VIRTUAL/PROF], getitimer
  std::array<rlimit, 16> rlimits;        // [RLIMIT_*], prlimit64(0, ...) on itself
  stack_t sigaltstack;                   // sigaltstack(NULL, &old)
  uint64_t clear_tid_address;            // prctl(PR_GET_TID_ADDRESS)
  int pdeath_signal;                     // prctl(PR_GET_PDEATHSIG)
  int securebits;                        // prctl(PR_GET_SECUREBITS)
  int dumpable;                          // prctl(PR_GET_DUMPABLE)
  bool child_subreaper;                  // prctl(PR_GET_CHILD_SUBREAPER)
  uint64_t brk;                          // brk(0)
  mode_t umask;                          // umask(0), then umask(old)
};

// The steps of Infect(), in order, for InfectOptions::fail_at.
enum class InfectStep {
  kNone,
  kCreateMemfd,       // memfd_create in the task
  kSizeMemfd,         // ftruncate
  kMapRemote,         // mmap MAP_SHARED RWX in the task
  kOpenPidfd,         // pidfd_open (engine)
  kTakeMemfd,         // pidfd_getfd (engine)
  kMapLocal,          // mmap of the same memfd (engine)
  kCloseRemoteMemfd,  // close in the task
  kCreateSocket,      // socketpair in the task
  kTakeSocket,        // pidfd_getfd, close of the task's copy
  kCreatePipe,        // pipe2 in the task
  kTakePipe,          // pidfd_getfd, close of the task's copy, F_SETPIPE_SZ
  kLoadBlob,          // copy and relocate the blob, fill the control block
  kStart,             // the task's thread goes to the blob's entry
  kHello,             // the parasite's first message
};
const char* InfectStepName(InfectStep step);

// Test hooks; the defaults (all off) are what production uses.
struct InfectOptions {
  // Makes Infect() fail at this step as if its syscall had failed, after all
  // the steps before it were done: every earlier step must then be undone.
  // kHello is special: the parasite itself is made to fault (ud2) where it
  // would greet, which exercises recovery from a crashed parasite.
  InfectStep fail_at = InfectStep::kNone;
};

class Parasite {
 public:
  // Enough for the blob, control block, stack, GetTaskState's result, and
  // some 60000 iovecs per DumpPages round trip. The task's memfd pages are
  // only allocated where written.
  static constexpr size_t kDefaultAreaBytes = size_t{1} << 20;

  // Infects the seized, stopped `task` with an area of `area_bytes` (rounded
  // up to pages; too small for the blob, its stack and a TaskState is an
  // error). On failure the task is as before (no mapping, no fd) and stopped.
  static absl::StatusOr<std::unique_ptr<Parasite>> Infect(ptrace::Task& task,
                                                          size_t area_bytes = kDefaultAreaBytes,
                                                          const InfectOptions& options = {});
  // Cures the task if Cure() was not called (errors are logged).
  ~Parasite();
  Parasite(const Parasite&) = delete;
  Parasite& operator=(const Parasite&) = delete;

  // All of TaskState in one round trip.
  absl::StatusOr<TaskState> GetTaskState();

  // Appends the contents of `ranges`, in order, to `out_fd` (at its file
  // position, as write() would). The parasite vmsplices the task's pages into
  // a pipe (no copy; at most /proc/sys/fs/pipe-max-size at a time) and a
  // thread of the engine (PageDrain) splices them from there into out_fd, so
  // the only copy is the one into out_fd's page cache. Every page must be
  // mapped and readable in the task (PROT_NONE or unmapped is an error: the
  // caller reads such ranges another way); pages never touched read as zeros
  // but get mapped (to the zero page) by the kernel. out_fd: a file, pipe or
  // socket; one splice() refuses (an O_APPEND file) gets the bytes by read()
  // and write() instead. On error, out_fd may have received part of the data.
  absl::Status DumpPages(absl::Span<const PageRange> ranges, int out_fd);

  // DumpPages in two halves, so the caller can go on meanwhile (with other
  // tasks: this one is busy): StartDumpPages sends the first batch and
  // starts the drain thread; FinishDumpPages sends the others and waits for
  // the parasite's answers and the last byte. Nothing but FinishDumpPages or
  // Cure (which stops the dump) may be called in between; out_fd must stay
  // open until then.
  absl::Status StartDumpPages(absl::Span<const PageRange> ranges, int out_fd);
  absl::Status FinishDumpPages();

  // Ends the parasite and removes every trace of it from the task (see the
  // top of this file). Idempotent; does as much as it can even after an
  // error, and returns the first one.
  absl::Status Cure();

  // The area's address in the task and its size.
  uint64_t remote_area() const { return remote_base_; }
  size_t area_bytes() const { return area_bytes_; }

  // How long a command may go without a sign of progress before it fails
  // (the parasite is then interrupted), and how often the task is checked
  // meanwhile.
  static constexpr int kTimeoutMs = 30'000;
  static constexpr int kPollMs = 20;

  // Page pipes of one page dump: the parasite fills one while the drain
  // empties another.
  static constexpr size_t kPagePipes = 2;

 private:
  Parasite(ptrace::Task& task, const InfectOptions& options) : task_(task), options_(options) {}

  absl::Status Setup(size_t area_bytes);
  absl::Status MapArea();
  absl::Status MakeChannels();
  absl::Status Launch();
  absl::Status Step(InfectStep step);
  absl::StatusOr<int> TakeFd(int remote_fd);
  absl::Status CloseRemote(int remote_fd);
  static constexpr uint64_t kScratch = ~uint64_t{0};
  absl::StatusOr<std::array<int, 2>> RemotePair(const char* what, long nr,
                                                std::array<uint64_t, 4> args);

  absl::Status NotRunning() const;
  absl::Status Send(uint32_t cmd, uint64_t arg0 = 0);
  absl::StatusOr<bool> TryReceive(uint32_t cmd, crpp_parasite_msg& m);
  absl::StatusOr<crpp_parasite_msg> Receive(uint32_t cmd);
  absl::StatusOr<crpp_parasite_msg> Command(uint32_t cmd, uint64_t arg0 = 0);
  absl::Status CheckAlive(int64_t& quiet_ms);
  absl::Status Broken(absl::Status why);
  absl::Status SendPagesBatch();
  absl::Status AbortPages(absl::Status why);
  absl::Status EndPages();
  absl::Status StopParasite();

  crpp_parasite_ctl* ctl() const;
  unsigned char* data() const;

  ptrace::Task& task_;
  InfectOptions options_;
  InfectStep step_ = InfectStep::kNone;  // the step Setup() is at
  // The area: [blob][control block page][stack][data area].
  size_t area_bytes_ = 0;
  size_t ctl_offset_ = 0;
  size_t stack_top_offset_ = 0;
  size_t data_offset_ = 0;
  uint64_t remote_base_ = 0;        // 0: not mapped in the task
  unsigned char* local_ = nullptr;  // the same memory here; nullptr: not mapped
  std::vector<int> remote_fds_;     // fds we made in the task and must close there
  int remote_sock_ = -1;            // the parasite's end of the socket pair, in the task
  std::array<int, kPagePipes> remote_pipes_{-1, -1};  // their write ends, in the task
  int pidfd_ = -1;
  int sock_ = -1;                              // our end of the socket pair
  std::array<int, kPagePipes> pipes_{-1, -1};  // our (read) ends of the page pipes
  // The page dump under way (StartDumpPages): ranges not sent yet, the
  // bytes before and in the batch the parasite works on, how the stream is
  // cut, and the thread emptying the pipes into the image.
  std::vector<PageRange> pages_;
  size_t pages_sent_ = 0;
  uint64_t sent_bytes_ = 0;
  uint64_t batch_bytes_ = 0;
  uint64_t stripe_bytes_ = 0;
  uint32_t stripes_ = 1;
  std::unique_ptr<PageDrain> drain_;
  enum class State { kSetUp, kRunning, kStopped, kCured } state_ = State::kSetUp;
};

}  // namespace crpp::infect

#endif  // CRPP_CORE_INFECT_PARASITE_H_
