// Internal helpers shared by the kerndat probes. Not part of the API.
#ifndef CRPP_CORE_KERNDAT_PROBE_UTIL_H_
#define CRPP_CORE_KERNDAT_PROBE_UTIL_H_

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "core/kerndat/probe.h"

namespace crpp::kerndat::internal {

inline Result Ok(std::string detail = {}) { return Result{true, std::move(detail)}; }
inline Result Fail(std::string reason) { return Result{false, std::move(reason)}; }

// "what: No such file or directory (ENOENT)".
std::string ErrnoText(std::string_view what, int err);
inline Result FailErrno(std::string_view what, int err) { return Fail(ErrnoText(what, err)); }

// Closes the descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Runs `fn` in a forked child and returns what it returned. The child sends
// its Result back through a pipe and leaves with _exit(); the parent reaps it
// by pid. A child that has not finished after `timeout_ms` is killed. A child
// that dies without reporting (a signal, say) gives a failure saying so.
// `fn` runs in a copy of a single-threaded caller: it may allocate, but must
// reap every process it starts itself.
Result InChild(absl::FunctionRef<Result()> fn, int timeout_ms = 10000);

// A forked child sleeping in pause(), seized with ptrace and stopped with
// PTRACE_INTERRUPT. The destructor kills and reaps it.
class TracedChild {
 public:
  TracedChild() = default;
  TracedChild(const TracedChild&) = delete;
  TracedChild& operator=(const TracedChild&) = delete;
  ~TracedChild();

  // `setup` runs in the child first; a non-zero return makes the child exit
  // with that code. Returns "" or what went wrong.
  std::string Start(int (*setup)() = nullptr);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// Waits for `pid` (our child) to end, also through ptrace stops; SIGKILLs it
// after `timeout_ms` (negative: no limit). Returns the wait status, or -1 if
// it could not be collected (e.g. SIGCHLD is ignored and the kernel reaped it).
int ReapChild(pid_t pid, int timeout_ms);

// "exited with 3" / "killed by SIGSEGV".
std::string DescribeWaitStatus(int status);

// Whole contents of a (small, e.g. /proc) file.
std::optional<std::string> ReadFile(const std::string& path);

// One line of /proc/self/maps.
struct MapsEntry {
  uintptr_t start = 0;
  uintptr_t end = 0;
  std::string perms;
  std::string name;  // pathname or [vdso]-like tag; may be empty
};
std::optional<std::vector<MapsEntry>> ReadSelfMaps();

// The vDSO-related special mappings: [vvar], [vvar_vclock], [vdso] (only
// those present). Empty when there is no [vdso].
std::vector<MapsEntry> VdsoBlocks(const std::vector<MapsEntry>& maps);

// In a child process: makes the next child of the caller start a new PID (and,
// when `flags` has more, other) namespace, retrying inside a new user namespace
// when plain unshare() is not allowed. Returns an error text or "" on success;
// `*in_userns` says whether the user namespace was needed.
std::string UnshareWithFallback(int flags, bool* in_userns);

// Directory for scratch files: $TEST_TMPDIR, $TMPDIR or /tmp.
std::string ScratchDir();

// Renders a byte count as "8 KiB" / "11008 bytes".
std::string Bytes(uint64_t n);

}  // namespace crpp::kerndat::internal

#endif  // CRPP_CORE_KERNDAT_PROBE_UTIL_H_
