// crpp's library interface: freeze a running process tree into a directory
// of images, and thaw it later, from a program. It runs the engine in the
// calling process (no criu binary, no sudo): the caller needs what a dump
// and a restore need, i.e. to be root, or to hold CAP_CHECKPOINT_RESTORE (or
// CAP_SYS_ADMIN) and CAP_SYS_PTRACE; Freeze and Thaw say which one is missing.
//
//   // A job whose stdin, stdout and stderr are pipes (a "goblin"):
//   auto frozen = crpp::Freeze(job_pid, "/var/lib/jobs/42", {.leave_running = false});
//   ...                                  // later, maybe on another machine
//   auto job = crpp::Thaw("/var/lib/jobs/42");
//   write((*job)->stdin_fd(), "more input\n", 11);     // the job's new stdin
//   read((*job)->stdout_fd(), buf, sizeof buf);        // and its new stdout
//   auto code = (*job)->Wait();
//
// Event loops poll Thawed::completion_fd() (readable once the job ended)
// instead of blocking in Wait().
//
// The images are criu's: `criu restore -D DIR` restores what Freeze wrote,
// and Thaw restores what `criu dump` wrote. A program adds resource plugins
// of its own with FreezeOptions::resources / ThawOptions::resources, e.g.
//
//   static const crpp::Engine<crpp::DefaultResources::With<MyResource>> kMine;
//   crpp::Freeze(pid, dir, {.resources = &kMine});
//
// Freeze and Thaw use the engine's log (core/log.h), which is one per
// process: they send it to their log file for the time of the call, and
// must not run in two threads at once.
#ifndef CRPP_API_CRIU_H_
#define CRPP_API_CRIU_H_

#include <signal.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/context.h"
#include "core/dump/dump.h"
#include "core/engine.h"
#include "core/restore/restore.h"
#include "resources/default_resources.h"

namespace crpp {

struct FreezeOptions {
  // true: the tree runs on once dumped (criu dump -R); false: it is killed
  // once its images are written (criu dump's default).
  bool leave_running = true;
  // The tree is a job of the caller's terminal (criu --shell-job).
  bool shell_job = false;
  // Where the log goes; "" = DIR/dump.log. Relative paths are DIR's.
  std::string log_path;
  // 0 (errors only) to 4 (everything), as criu's -v.
  int verbosity = 2;
  // criu's --external values ("unix[INO]", ...), --file-locks.
  std::vector<std::string> external;
  bool file_locks = false;
  // The plugin set; null = DefaultResources.
  const AnyEngine* resources = nullptr;
};

struct FreezeResult {
  pid_t pid = 0;           // the root of the frozen tree
  std::string images_dir;  // absolute
  std::string log_path;    // absolute
  DumpStats stats;         // as in stats-dump
};

// Writes the images of the tree rooted at `pid` into `dir` (which must
// exist). On failure the tree runs on exactly as before, and the error
// names the pid, fd or resource concerned.
absl::StatusOr<FreezeResult> Freeze(pid_t pid, const std::string& dir,
                                    const FreezeOptions& options = {});

struct ThawOptions {
  // The tree joins the caller's session and terminal (criu --shell-job).
  bool shell_job = false;
  // false: the restored root is the caller's child (Wait() gets its exit
  // code). true: it is nobody's child in the caller (it is reparented to
  // init or the caller's subreaper); Wait() then only learns that it ended.
  bool detach = false;
  // Written with the restored root's pid as soon as it runs ("" = none).
  std::string pidfile;
  // true: those of the root's stdin, stdout and stderr that were pipes to a
  // process outside the tree come back on new pipes whose other ends the
  // caller gets (Thawed::stdin_fd(), ...). false: restored as dumped (for
  // pipes outside the tree, inherit_fds must then name them).
  bool new_stdio = true;
  // criu's --inherit-fd, in addition (the fds stay the caller's).
  std::vector<InheritFd> inherit_fds;
  // Where the log goes; "" = DIR/restore.log. Relative paths are DIR's.
  std::string log_path;
  int verbosity = 2;
  // The plugin set; null = DefaultResources. It must know every image the
  // dump wrote.
  const AnyEngine* resources = nullptr;
};

// A thawed tree, from the caller's side. Destroying it closes the caller's
// ends of the stdio pipes and leaves the tree running (Terminate() first to
// end it); a child not waited for is reaped by the destructor only if it
// already ended.
class Thawed {
 public:
  ~Thawed();
  Thawed(const Thawed&) = delete;
  Thawed& operator=(const Thawed&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  // The caller's ends of the new stdio pipes: write the job's input to
  // stdin_fd(), read its output from stdout_fd() and stderr_fd(). -1 where
  // that fd was not a pipe (or ThawOptions::new_stdio was false); the same
  // fd twice when two of them were one pipe (2>&1). The Thawed owns them
  // unless taken.
  int stdin_fd() const { return stdio_[0]; }
  int stdout_fd() const { return stdio_[1]; }
  int stderr_fd() const { return stdio_[2]; }
  // Gives up the ownership of stdio fd `n` (0, 1 or 2): the caller closes it.
  int TakeStdio(int n);
  // A pidfd of the root: poll() it for POLLIN, which comes once the root
  // ended. Owned by the Thawed.
  int completion_fd() const { return pidfd_; }
  // Waits until the root ends. Its exit code, or 128 + the signal that
  // killed it; -1 when detached (the kernel tells only the parent).
  // NotFound after a Freeze that killed it (Freeze reaps what it kills).
  absl::StatusOr<int> Wait();
  // Sends `signal` to the root (through its pidfd: never to a process that
  // reused the pid).
  absl::Status Terminate(int signal = SIGTERM);

 private:
  friend absl::StatusOr<std::unique_ptr<Thawed>> Thaw(const std::string&, const ThawOptions&);
  Thawed() = default;

  pid_t pid_ = 0;
  bool detached_ = false;
  bool waited_ = false;
  int pidfd_ = -1;
  int stdio_[3] = {-1, -1, -1};
  std::string log_path_;
};

// Restores the tree `dir` holds; returns once it runs. On failure nothing of
// it is left, and the error names the image or resource concerned.
absl::StatusOr<std::unique_ptr<Thawed>> Thaw(const std::string& dir,
                                             const ThawOptions& options = {});

}  // namespace crpp

#endif  // CRPP_API_CRIU_H_
