// Thaw's side of a frozen job's stdio: what its fds 0-2 were (from the
// images), and what takes the place of those that were pipes to a process
// outside the job, i.e. the other ends the freeze left behind.
//
// A shell user has no pipe ends to hold, so the new ends are what a shell
// hands any program: thaw's own stdin, stdout and stderr (a terminal, a
// pipe from `|`, a file from `>`), or the files and FIFOs named with
// --stdin/--stdout/--stderr (/dev/null included). The job's terminal, when
// it had one, is thaw's terminal (criu's --shell-job), not one of these.
#ifndef CRPP_TOOLS_PDUM_JOB_STDIO_H_
#define CRPP_TOOLS_PDUM_JOB_STDIO_H_

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/restore/restore.h"

namespace crpp::pdum {

enum class StdioKind {
  kUnused,       // not open
  kOutsidePipe,  // a pipe whose other end no process of the job held
  kTerminal,     // a terminal
  kOther,        // a file, a FIFO, a pipe inside the job, a socket: restored as it was
};

struct StdioSlot {
  StdioKind kind = StdioKind::kUnused;
  uint32_t pipe_id = 0;    // kOutsidePipe: the pipe's inode at freeze
  bool job_reads = false;  // kOutsidePipe: the job held the read end
  std::string path;        // kTerminal, kOther: what it was, when known
};

struct FrozenJob {
  pid_t pid = 0, pgid = 0, sid = 0;  // of the root, at freeze
  std::array<StdioSlot, 3> stdio;
  std::string terminal;  // a terminal some fd of the job was on ("" when none)
  // The job lived in a session it did not lead, or on a terminal: thaw
  // restores it as a job of thaw's own session and terminal (--shell-job).
  bool shell_job() const { return sid != pid || !terminal.empty(); }
};

// Reads pstree.img, the root's ids and fdinfo images and files.img of `dir`.
absl::StatusOr<FrozenJob> ReadFrozenJob(const std::string& dir);

// The fds standing for the job's pipes to the outside, for ThawOptions::
// inherit_fds. Ours: the destructor closes them (once Thaw has its copies).
struct StdioHandover {
  StdioHandover() = default;
  StdioHandover(const StdioHandover&) = delete;
  StdioHandover& operator=(const StdioHandover&) = delete;
  ~StdioHandover();

  std::vector<InheritFd> inherit;
  // The same for `criu restore`: "--inherit-fd" "fd[N]:pipe:[INO]" pairs,
  // and the shell redirections that open fd N ("3<in.fifo").
  std::vector<std::string> criu_args;
  std::vector<std::string> redirections;
  // One line per replaced fd: "stdin (pipe:[123]) <- thaw's stdin".
  std::vector<std::string> described;
};

// For each n in 0-2 whose slot is kOutsidePipe: the file paths[n] when not
// empty (stdin opened read-only; stdout and stderr appended to, created if
// need be; a FIFO waits for its other side as a shell redirection does),
// else this process's own fd n, reopened with the job's access mode when it
// has another (a terminal is open read-write, a pipe end is not). Two slots
// on one pipe (2>&1) take the first one's replacement. InvalidArgument when
// a path names an fd that was not such a pipe, or our fd n is closed.
absl::StatusOr<std::unique_ptr<StdioHandover>> HandOverStdio(
    const FrozenJob& job, const std::array<std::string, 3>& paths);

}  // namespace crpp::pdum

#endif  // CRPP_TOOLS_PDUM_JOB_STDIO_H_
