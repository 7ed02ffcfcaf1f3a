#include "core/kerndat/probe_util.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace crpp::kerndat::internal {
namespace {

int64_t NowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

void SleepMs(int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// In a fresh child: never outlive the prober.
void DieWithParent(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

std::string ErrnoText(std::string_view what, int err) {
  const char* name = strerrorname_np(err);
  return absl::StrFormat("%s: %s (%s)", what, strerror(err),
                         name ? name : absl::StrCat("errno ", err));
}

std::string DescribeWaitStatus(int status) {
  if (status < 0) return "could not be waited for";
  if (WIFEXITED(status)) return absl::StrCat("exited with ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* abbrev = sigabbrev_np(WTERMSIG(status));
    return abbrev ? absl::StrCat("killed by SIG", abbrev)
                  : absl::StrCat("killed by signal ", WTERMSIG(status));
  }
  return absl::StrFormat("ended with wait status %#x", status);
}

int ReapChild(pid_t pid, int timeout_ms) {
  const int64_t deadline = timeout_ms < 0 ? 0 : NowMs() + timeout_ms;
  bool killed = false;
  int nap = 1;
  for (;;) {
    int status = 0;
    const bool block = timeout_ms < 0 || killed;
    pid_t r = waitpid(pid, &status, __WALL | (block ? 0 : WNOHANG));
    if (r == pid) {
      if (WIFEXITED(status) || WIFSIGNALED(status)) return status;
      // A ptrace stop of a traced child: it can only end by being killed.
      if (!killed) {
        kill(pid, SIGKILL);
        killed = true;
      }
      continue;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;  // not our child any more (or SIGCHLD is ignored)
    }
    if (NowMs() >= deadline) {
      kill(pid, SIGKILL);
      killed = true;
      continue;
    }
    SleepMs(nap);
    if (nap < 16) nap *= 2;
  }
}

Result InChild(absl::FunctionRef<Result()> fn, int timeout_ms) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return FailErrno("pipe2", errno);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(p[0]);
    close(p[1]);
    return FailErrno("fork", err);
  }
  if (pid == 0) {
    close(p[0]);
    DieWithParent(parent);
    signal(SIGCHLD, SIG_DFL);  // fn reaps what it starts: never let the kernel do it
    Result r = fn();
    std::string msg(1, r.ok ? '+' : '-');
    msg += r.detail;
    WriteAll(p[1], msg);
    _exit(r.ok ? 0 : 1);
  }
  close(p[1]);
  Fd rd(p[0]);

  std::string msg;
  const int64_t deadline = NowMs() + timeout_ms;
  bool timed_out = false;
  for (;;) {
    int64_t left = deadline - NowMs();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfd{rd.get(), POLLIN, 0};
    int n = poll(&pfd, 1, static_cast<int>(left));
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (n == 0) continue;
    char buf[512];
    ssize_t got = read(rd.get(), buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the child is gone (or going)
    msg.append(buf, static_cast<size_t>(got));
  }
  if (timed_out) kill(pid, SIGKILL);
  int status = ReapChild(pid, timed_out ? -1 : 5000);

  if (timed_out) {
    return Fail(absl::StrFormat("probe child did not finish within %d ms (killed)", timeout_ms));
  }
  if (msg.empty()) return Fail("probe child " + DescribeWaitStatus(status) + " without reporting");
  return Result{msg[0] == '+', msg.substr(1)};
}

TracedChild::~TracedChild() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    ReapChild(pid_, -1);
  }
}

std::string TracedChild::Start(int (*setup)()) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return ErrnoText("pipe2", errno);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) {
    int err = errno;
    close(p[0]);
    close(p[1]);
    return ErrnoText("fork", err);
  }
  if (pid_ == 0) {
    close(p[0]);
    DieWithParent(parent);
    if (setup != nullptr) {
      int rc = setup();
      if (rc != 0) _exit(rc);
    }
    char c = 'r';
    if (write(p[1], &c, 1) != 1) _exit(100);
    for (;;) pause();
  }
  close(p[1]);
  Fd rd(p[0]);
  pollfd pfd{rd.get(), POLLIN, 0};
  char c = 0;
  if (poll(&pfd, 1, 5000) != 1 || read(rd.get(), &c, 1) != 1) {
    kill(pid_, SIGKILL);
    int status = ReapChild(pid_, -1);
    pid_ = -1;
    return "the child did not get ready: it " + DescribeWaitStatus(status);
  }
  if (ptrace(PTRACE_SEIZE, pid_, nullptr, nullptr) != 0) return ErrnoText("PTRACE_SEIZE", errno);
  if (ptrace(PTRACE_INTERRUPT, pid_, nullptr, nullptr) != 0) {
    return ErrnoText("PTRACE_INTERRUPT", errno);
  }
  int status = 0;
  pid_t r;
  while ((r = waitpid(pid_, &status, __WALL)) < 0 && errno == EINTR) {
  }
  if (r != pid_) return ErrnoText("waitpid", errno);
  if (!WIFSTOPPED(status) || (status >> 16) != PTRACE_EVENT_STOP) {
    return "the child did not reach a PTRACE_EVENT_STOP: it " + DescribeWaitStatus(status);
  }
  return "";
}

std::optional<std::string> ReadFile(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::optional<std::vector<MapsEntry>> ReadSelfMaps() {
  std::optional<std::string> text = ReadFile("/proc/self/maps");
  if (!text) return std::nullopt;
  std::vector<MapsEntry> out;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t eol = text->find('\n', pos);
    if (eol == std::string::npos) eol = text->size();
    std::string line = text->substr(pos, eol - pos);
    pos = eol + 1;
    unsigned long start = 0, end = 0;
    char perms[8] = {};
    int name_at = 0;
    if (sscanf(line.c_str(), "%lx-%lx %7s %*s %*s %*s %n", &start, &end, perms, &name_at) < 3) {
      continue;
    }
    MapsEntry e;
    e.start = start;
    e.end = end;
    e.perms = perms;
    if (name_at > 0 && static_cast<size_t>(name_at) <= line.size()) e.name = line.substr(name_at);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<MapsEntry> VdsoBlocks(const std::vector<MapsEntry>& maps) {
  std::vector<MapsEntry> out;
  bool have_vdso = false;
  for (const MapsEntry& e : maps) {
    if (e.name == "[vdso]" || e.name == "[vvar]" || e.name == "[vvar_vclock]") {
      out.push_back(e);
      if (e.name == "[vdso]") have_vdso = true;
    }
  }
  if (!have_vdso) out.clear();
  return out;
}

std::string UnshareWithFallback(int flags, bool* in_userns) {
  *in_userns = false;
  if (unshare(flags) == 0) return "";
  int first = errno;
  if ((flags & CLONE_NEWUSER) == 0 && (first == EPERM || first == EACCES)) {
    if (unshare(flags | CLONE_NEWUSER) == 0) {
      *in_userns = true;
      return "";
    }
    return ErrnoText("unshare", first) + "; " + ErrnoText("inside a new user namespace", errno);
  }
  return ErrnoText("unshare", first);
}

std::string ScratchDir() {
  for (const char* var : {"TEST_TMPDIR", "TMPDIR"}) {
    const char* v = getenv(var);
    if (v != nullptr && *v != '\0') return v;
  }
  return "/tmp";
}

std::string Bytes(uint64_t n) {
  if (n >= 1024 && n % 1024 == 0) return absl::StrCat(n / 1024, " KiB");
  return absl::StrCat(n, " bytes");
}

}  // namespace crpp::kerndat::internal
