#include "core/infect/parasite.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/log.h"
#include "parasite/blob_loader.h"
#include "parasite/parasite_blob.h"
#include "parasite/parasite_protocol.h"

namespace crpp::infect {
namespace {

namespace blob = blobs::parasite_blob;
static_assert(Parasite::kPagePipes == CRPP_PAGE_PIPES);

constexpr size_t kPage = 4096;
// The parasite's calls are shallow and keep their buffers in the data area;
// this is far more than they use.
constexpr size_t kStackBytes = 32 << 10;
// Its name in the task's /proc/PID/maps while infected: "/memfd:crpp-parasite (deleted)".
constexpr char kMemfdName[] = "crpp-parasite";
// Newer than our kernel headers: memfd_create's MFD_EXEC (6.3; without it a
// kernel with vm.memfd_noexec=2 refuses PROT_EXEC) and pidfd_open's
// PIDFD_THREAD (6.9: this thread's fd table, not the thread group leader's).
constexpr unsigned kMfdExec = 0x0010;
constexpr unsigned kPidfdThread = O_EXCL;

size_t PageUp(size_t n) { return (n + kPage - 1) & ~(kPage - 1); }

absl::Status Errno(pid_t tid, const char* what) {
  return absl::InternalError(absl::StrFormat("pid %d: %s: %s", tid, what, strerror(errno)));
}

// /proc/sys/fs/pipe-max-size: how far F_SETPIPE_SZ may go without
// CAP_SYS_RESOURCE, and the most one vmsplice can hand over at a time.
int PipeMaxSize() {
  static const int size = [] {
    int v = 0;
    std::ifstream("/proc/sys/fs/pipe-max-size") >> v;
    return v;
  }();
  return size;
}

const char* QueryName(uint64_t query) {
  switch (query) {
    case CRPP_QUERY_SIGACTION:
      return "rt_sigaction";
    case CRPP_QUERY_ITIMER:
      return "getitimer";
    case CRPP_QUERY_RLIMIT:
      return "prlimit64";
    case CRPP_QUERY_SIGALTSTACK:
      return "sigaltstack";
    case CRPP_QUERY_TID_ADDRESS:
      return "prctl(PR_GET_TID_ADDRESS)";
    case CRPP_QUERY_PDEATHSIG:
      return "prctl(PR_GET_PDEATHSIG)";
    case CRPP_QUERY_SECUREBITS:
      return "prctl(PR_GET_SECUREBITS)";
    case CRPP_QUERY_DUMPABLE:
      return "prctl(PR_GET_DUMPABLE)";
    case CRPP_QUERY_CHILD_SUBREAPER:
      return "prctl(PR_GET_CHILD_SUBREAPER)";
    case CRPP_QUERY_UMASK:
      return "umask";
    default:
      return "the data area";
  }
}

TaskState ToTaskState(const crpp_task_state& w) {
  TaskState s{};
  for (size_t i = 0; i < s.sigactions.size(); ++i) {
    const crpp_ksigaction& a = w.sigactions[i];
    s.sigactions[i] = {a.handler, a.flags, a.restorer, a.mask};
  }
  for (size_t i = 0; i < s.itimers.size(); ++i) {
    const crpp_itimerval& t = w.itimers[i];
    s.itimers[i].it_interval = {t.interval_sec, t.interval_usec};
    s.itimers[i].it_value = {t.value_sec, t.value_usec};
  }
  for (size_t i = 0; i < s.rlimits.size(); ++i) {
    s.rlimits[i] = {w.rlimits[i].cur, w.rlimits[i].max};
  }
  s.sigaltstack.ss_sp = reinterpret_cast<void*>(w.sigaltstack.sp);
  s.sigaltstack.ss_flags = w.sigaltstack.flags;
  s.sigaltstack.ss_size = w.sigaltstack.size;
  s.clear_tid_address = w.tid_address;
  s.pdeath_signal = w.pdeathsig;
  s.securebits = w.securebits;
  s.dumpable = w.dumpable;
  s.child_subreaper = w.child_subreaper != 0;
  s.brk = w.brk;
  s.umask = w.umask;
  return s;
}

}  // namespace

const char* InfectStepName(InfectStep step) {
  switch (step) {
    case InfectStep::kNone:
      return "none";
    case InfectStep::kCreateMemfd:
      return "memfd_create";
    case InfectStep::kSizeMemfd:
      return "ftruncate of the memfd";
    case InfectStep::kMapRemote:
      return "mmap in the task";
    case InfectStep::kOpenPidfd:
      return "pidfd_open";
    case InfectStep::kTakeMemfd:
      return "pidfd_getfd of the memfd";
    case InfectStep::kMapLocal:
      return "mmap in the engine";
    case InfectStep::kCloseRemoteMemfd:
      return "close of the task's memfd";
    case InfectStep::kCreateSocket:
      return "socketpair";
    case InfectStep::kTakeSocket:
      return "taking the engine's end of the socket";
    case InfectStep::kCreatePipe:
      return "pipe2";
    case InfectStep::kTakePipe:
      return "taking the read end of the pipe";
    case InfectStep::kLoadBlob:
      return "loading the blob";
    case InfectStep::kStart:
      return "starting the parasite";
    case InfectStep::kHello:
      return "the parasite's greeting";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<Parasite>> Parasite::Infect(ptrace::Task& task, size_t area_bytes,
                                                           const InfectOptions& options) {
  std::unique_ptr<Parasite> p(new Parasite(task, options));
  absl::Status s = p->Setup(area_bytes);
  if (s.ok()) return p;
  std::string message = absl::StrFormat("pid %d: infection failed at %s: %s", task.tid(),
                                        InfectStepName(p->step_), s.message());
  if (absl::Status undo = p->Cure(); !undo.ok()) {
    absl::StrAppend(&message, "; and undoing it failed: ", undo.message());
  }
  return absl::Status(s.code(), message);
}

Parasite::~Parasite() {
  if (absl::Status s = Cure(); !s.ok()) {
    log::Error("pid %d: curing the parasite: %s", task_.tid(), s.ToString());
  }
}

crpp_parasite_ctl* Parasite::ctl() const {
  return reinterpret_cast<crpp_parasite_ctl*>(local_ + ctl_offset_);
}

unsigned char* Parasite::data() const { return local_ + data_offset_; }

absl::Status Parasite::Step(InfectStep step) {
  step_ = step;
  if (options_.fail_at == step && step != InfectStep::kHello) {
    return absl::InternalError("failing on purpose (InfectOptions::fail_at)");
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Parasite::TakeFd(int remote_fd) {
  int fd = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd_, remote_fd, 0));
  if (fd < 0) return Errno(task_.tid(), "pidfd_getfd");
  return fd;  // O_CLOEXEC already
}

absl::Status Parasite::CloseRemote(int remote_fd) {
  auto r = task_.SyscallOk("close", SYS_close, static_cast<uint64_t>(remote_fd));
  if (!r.ok()) return r.status();
  remote_fds_.erase(std::find(remote_fds_.begin(), remote_fds_.end(), remote_fd));
  return absl::OkStatus();
}

// Runs socketpair() or pipe2() in the task, with the scratch page where
// `args` say kScratch: the int[2] it fills.
absl::StatusOr<std::array<int, 2>> Parasite::RemotePair(const char* what, long nr,
                                                        std::array<uint64_t, 4> args) {
  auto scratch = task_.MappedScratch();
  if (!scratch.ok()) return scratch.status();
  std::replace(args.begin(), args.end(), kScratch, *scratch);
  auto r = task_.SyscallOk(what, nr, args[0], args[1], args[2], args[3]);
  if (!r.ok()) return r.status();
  std::array<int, 2> fds;
  if (auto s = task_.ReadMemory(*scratch, fds.data(), sizeof fds); !s.ok()) return s;
  remote_fds_.insert(remote_fds_.end(), fds.begin(), fds.end());
  return fds;
}

absl::Status Parasite::Setup(size_t area_bytes) {
  area_bytes_ = PageUp(area_bytes);
  ctl_offset_ = PageUp(blob::kMemSize);
  stack_top_offset_ = ctl_offset_ + kPage + kStackBytes;
  data_offset_ = stack_top_offset_;
  if (area_bytes_ < data_offset_ + PageUp(sizeof(crpp_task_state))) {
    return absl::InvalidArgumentError(
        absl::StrFormat("an area of %d bytes is too small: it takes at least %d", area_bytes,
                        data_offset_ + PageUp(sizeof(crpp_task_state))));
  }
  if (auto s = MapArea(); !s.ok()) return s;
  if (auto s = MakeChannels(); !s.ok()) return s;
  return Launch();
}

// The shared area: created, sized and mapped by the task; the same memory
// mapped here through the task's fd, which is then closed.
absl::Status Parasite::MapArea() {
  const pid_t tid = task_.tid();
  if (auto s = Step(InfectStep::kCreateMemfd); !s.ok()) return s;
  auto scratch = task_.MappedScratch();
  if (!scratch.ok()) return scratch.status();
  if (auto s = task_.WriteMemory(*scratch, kMemfdName, sizeof kMemfdName); !s.ok()) return s;
  auto memfd = task_.Syscall(SYS_memfd_create, *scratch, MFD_CLOEXEC | kMfdExec);
  if (memfd.ok() && *memfd == -EINVAL) {  // a kernel older than MFD_EXEC
    memfd = task_.Syscall(SYS_memfd_create, *scratch, MFD_CLOEXEC);
  }
  if (!memfd.ok()) return memfd.status();
  if (*memfd < 0) {
    return absl::InternalError(absl::StrFormat("memfd_create: %s", strerror(-*memfd)));
  }
  const int remote_memfd = static_cast<int>(*memfd);
  remote_fds_.push_back(remote_memfd);
  if (auto s = Step(InfectStep::kSizeMemfd); !s.ok()) return s;
  if (auto r = task_.SyscallOk("ftruncate", SYS_ftruncate, remote_memfd, area_bytes_); !r.ok()) {
    return r.status();
  }
  if (auto s = Step(InfectStep::kMapRemote); !s.ok()) return s;
  auto base = task_.SyscallOk("mmap", SYS_mmap, 0, area_bytes_, PROT_READ | PROT_WRITE | PROT_EXEC,
                              MAP_SHARED, remote_memfd, 0);
  if (!base.ok()) return base.status();
  remote_base_ = *base;

  if (auto s = Step(InfectStep::kOpenPidfd); !s.ok()) return s;
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, tid, kPidfdThread));
  if (pidfd_ < 0 && errno == EINVAL) pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, tid, 0));
  if (pidfd_ < 0) return Errno(tid, "pidfd_open");
  if (auto s = Step(InfectStep::kTakeMemfd); !s.ok()) return s;
  auto local_memfd = TakeFd(remote_memfd);
  if (!local_memfd.ok()) return local_memfd.status();
  if (auto s = Step(InfectStep::kMapLocal); !s.ok()) {
    close(*local_memfd);
    return s;
  }
  void* local = mmap(nullptr, area_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, *local_memfd, 0);
  close(*local_memfd);
  if (local == MAP_FAILED) return Errno(tid, "mmap of the task's memfd");
  local_ = static_cast<unsigned char*>(local);
  if (auto s = Step(InfectStep::kCloseRemoteMemfd); !s.ok()) return s;
  return CloseRemote(remote_memfd);
}

// The socket pair and the page pipe: made in the task, our ends taken and
// closed there.
absl::Status Parasite::MakeChannels() {
  if (auto s = Step(InfectStep::kCreateSocket); !s.ok()) return s;
  auto sv = RemotePair("socketpair", SYS_socketpair,
                       {AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, kScratch});
  if (!sv.ok()) return sv.status();
  if (auto s = Step(InfectStep::kTakeSocket); !s.ok()) return s;
  auto sock = TakeFd((*sv)[0]);
  if (!sock.ok()) return sock.status();
  sock_ = *sock;
  if (auto s = CloseRemote((*sv)[0]); !s.ok()) return s;
  remote_sock_ = (*sv)[1];
  // The page pipes: one per stripe of a page dump (crpp_dump_pages_args).
  for (size_t k = 0; k < pipes_.size(); ++k) {
    if (auto s = Step(InfectStep::kCreatePipe); !s.ok()) return s;
    auto pipe_fds = RemotePair("pipe2", SYS_pipe2, {kScratch, O_CLOEXEC});
    if (!pipe_fds.ok()) return pipe_fds.status();
    if (auto s = Step(InfectStep::kTakePipe); !s.ok()) return s;
    auto pipe_rd = TakeFd((*pipe_fds)[0]);
    if (!pipe_rd.ok()) return pipe_rd.status();
    pipes_[k] = *pipe_rd;
    if (auto s = CloseRemote((*pipe_fds)[0]); !s.ok()) return s;
    remote_pipes_[k] = (*pipe_fds)[1];
    // Our end only: we wait with poll(), the parasite blocks in vmsplice.
    if (fcntl(pipes_[k], F_SETFL, O_NONBLOCK) != 0) {
      return Errno(task_.tid(), "fcntl(O_NONBLOCK)");
    }
    if (PipeMaxSize() > 0 && fcntl(pipes_[k], F_SETPIPE_SZ, PipeMaxSize()) < 0) {
      log::Warn("pid %d: F_SETPIPE_SZ %d: %s (pages go through a smaller pipe)", task_.tid(),
                PipeMaxSize(), strerror(errno));
    }
  }
  return absl::OkStatus();
}

// The blob, relocated for the task's address of the area, and its orders;
// then the thread goes there, and the parasite must greet.
absl::Status Parasite::Launch() {
  if (auto s = Step(InfectStep::kLoadBlob); !s.ok()) return s;
  if (auto s = LoadBlobAt(local_, ctl_offset_, blob::kBlob, remote_base_); !s.ok()) return s;
  crpp_parasite_ctl* c = ctl();
  std::memset(c, 0, sizeof *c);
  c->version = CRPP_PARASITE_VERSION;
  c->test_fault = options_.fail_at == InfectStep::kHello;
  c->sock_fd = remote_sock_;
  for (size_t k = 0; k < pipes_.size(); ++k) c->pipe_fds[k] = remote_pipes_[k];
  c->data = remote_base_ + data_offset_;
  c->data_size = area_bytes_ - data_offset_;

  if (auto s = Step(InfectStep::kStart); !s.ok()) return s;
  if (auto s = task_.Start(remote_base_ + blob::kEntry_parasite_entry,
                           remote_base_ + stack_top_offset_, remote_base_ + ctl_offset_);
      !s.ok()) {
    return s;
  }
  state_ = State::kRunning;
  if (auto s = Step(InfectStep::kHello); !s.ok()) return s;
  auto hello = Receive(CRPP_PARASITE_HELLO);
  if (!hello.ok()) return hello.status();
  if (hello->arg0 != CRPP_PARASITE_VERSION) {
    return Broken(absl::InternalError(absl::StrFormat("the parasite speaks version %d, not %d",
                                                      hello->arg0, CRPP_PARASITE_VERSION)));
  }
  log::Debug("pid %d: parasite running, area %#x (%d bytes)", task_.tid(), remote_base_,
             area_bytes_);
  return absl::OkStatus();
}

absl::Status Parasite::Broken(absl::Status why) {
  if (task_.running()) {
    if (absl::Status s = task_.Interrupt(); !s.ok()) {
      log::Error("pid %d: stopping the parasite: %s", task_.tid(), s.ToString());
    }
  }
  if (state_ == State::kRunning) state_ = State::kStopped;
  return why;
}

// Called when nothing came for kPollMs: the parasite may have faulted,
// returned or died, or be stuck.
absl::Status Parasite::CheckAlive(int64_t& quiet_ms) {
  auto trapped = task_.PollTrap();
  if (!trapped.ok()) return Broken(trapped.status());
  if (*trapped) {
    return Broken(absl::InternalError(
        absl::StrFormat("pid %d: the parasite returned without an answer", task_.tid())));
  }
  quiet_ms += kPollMs;
  if (quiet_ms >= kTimeoutMs) {
    return Broken(absl::DeadlineExceededError(absl::StrFormat(
        "pid %d: the parasite did not answer within %d ms", task_.tid(), kTimeoutMs)));
  }
  return absl::OkStatus();
}

absl::Status Parasite::Send(uint32_t cmd, uint64_t arg0) {
  const crpp_parasite_msg m = {cmd, 0, arg0, 0};
  if (send(sock_, &m, sizeof m, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof m)) {
    return Broken(Errno(task_.tid(), "send to the parasite"));
  }
  return absl::OkStatus();
}

// One message from the parasite, if it is ready now: true when `m` holds it.
absl::StatusOr<bool> Parasite::TryReceive(uint32_t cmd, crpp_parasite_msg& m) {
  ssize_t n = recv(sock_, &m, sizeof m, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
  if (n < 0) return Broken(Errno(task_.tid(), "recv from the parasite"));
  if (n == 0) {
    // Its end stays open in the task until we close it: the task is gone.
    return Broken(
        absl::AbortedError(absl::StrFormat("pid %d: the parasite's socket closed", task_.tid())));
  }
  if (n != sizeof m || m.cmd != cmd) {
    return Broken(absl::InternalError(
        absl::StrFormat("pid %d: the parasite answered %d bytes for command %d to command %d",
                        task_.tid(), n, m.cmd, cmd)));
  }
  return true;
}

absl::StatusOr<crpp_parasite_msg> Parasite::Receive(uint32_t cmd) {
  int64_t quiet_ms = 0;
  for (;;) {
    pollfd p = {sock_, POLLIN, 0};
    int r = poll(&p, 1, kPollMs);
    if (r < 0) {
      if (errno != EINTR) return Broken(Errno(task_.tid(), "poll"));
      continue;
    }
    if (r > 0) {
      crpp_parasite_msg m;
      auto got = TryReceive(cmd, m);
      if (!got.ok()) return got.status();
      if (*got) return m;
    } else if (auto s = CheckAlive(quiet_ms); !s.ok()) {
      return s;
    }
  }
}

absl::Status Parasite::NotRunning() const {
  return absl::FailedPreconditionError(
      absl::StrFormat("pid %d: the parasite does not run (it failed, or was cured)", task_.tid()));
}

absl::StatusOr<crpp_parasite_msg> Parasite::Command(uint32_t cmd, uint64_t arg0) {
  if (state_ != State::kRunning) return NotRunning();
  if (auto s = Send(cmd, arg0); !s.ok()) return s;
  return Receive(cmd);
}

absl::StatusOr<TaskState> Parasite::GetTaskState() {
  auto m = Command(CRPP_PARASITE_GET_TASK_STATE);
  if (!m.ok()) return m.status();
  if (m->status < 0) {
    return absl::InternalError(absl::StrFormat("pid %d: parasite: %s (%d): %s", task_.tid(),
                                               QueryName(m->arg0), m->arg1, strerror(-m->status)));
  }
  crpp_task_state wire;
  std::memcpy(&wire, data(), sizeof wire);
  return ToTaskState(wire);
}

absl::Status Parasite::StopParasite() {
  if (state_ != State::kRunning) return absl::OkStatus();
  auto fini = Command(CRPP_PARASITE_FINI);
  // It returns to its int3 right after answering; Broken() makes sure it
  // stopped whatever happened.
  return Broken(fini.ok() ? task_.WaitTrap() : fini.status());
}

absl::Status Parasite::Cure() {
  if (state_ == State::kCured) return absl::OkStatus();
  // A page dump still under way is stopped first: its thread reads our pipe.
  absl::Status first = drain_ ? AbortPages(absl::AbortedError(absl::StrFormat(
                                    "pid %d: cured in the middle of a page dump", task_.tid())))
                              : absl::OkStatus();
  if (first.ok()) first = StopParasite();
  auto note = [&first](absl::Status s) {
    if (first.ok() && !s.ok()) first = std::move(s);
  };
  // The task is stopped now (or gone): undo what was done in it, newest
  // first. Each undo is tried a few times: one failed injected syscall must
  // not leave an fd or a mapping behind in the task.
  constexpr int kUndoTries = 3;
  const std::vector<int> fds(remote_fds_.rbegin(), remote_fds_.rend());
  for (int fd : fds) {
    absl::Status closed;
    for (int i = 0; i < kUndoTries; ++i) {
      closed = CloseRemote(fd);
      if (closed.ok()) break;
    }
    note(closed);
  }
  remote_fds_.clear();
  if (remote_base_ != 0) {
    absl::Status unmapped;
    for (int i = 0; i < kUndoTries; ++i) {
      unmapped = task_.SyscallOk("munmap", SYS_munmap, remote_base_, area_bytes_).status();
      if (unmapped.ok()) break;
    }
    note(unmapped);
    remote_base_ = 0;
  }
  if (local_ != nullptr) munmap(local_, area_bytes_);
  local_ = nullptr;
  for (int* fd : {&sock_, &pipes_[0], &pipes_[1], &pidfd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  state_ = State::kCured;
  if (first.ok()) log::Debug("pid %d: parasite cured", task_.tid());
  return first;
}

}  // namespace crpp::infect
