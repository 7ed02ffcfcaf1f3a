// The end-to-end harness: runs a program of tests/e2e/programs, checkpoints it
// with `criu dump`, restores it with `criu restore`, and asks the restored
// program for its verdict (the protocol is in tests/e2e/programs/common.h).
//
//   crpp::e2e::Session s("counter");
//   E2E_REQUIRE_OK(s, s.Start());
//   E2E_REQUIRE_OK(s, s.Dump());
//   E2E_REQUIRE_OK(s, s.Restore());
//   E2E_REQUIRE_OK(s, s.Verdict());
//
// Every failure is an absl::Status that says what was expected; Diagnostics()
// adds the tails of dump.log, restore.log, criu's output and the program's
// stderr and report. The destructor kills (SIGKILL, by pid) and reaps every
// process the session started or restored, and anything else left as our
// child: the harness makes itself a child subreaper, so a restored task,
// whose parent `criu restore -d` was, becomes our child when criu exits. On
// SIGTERM (Bazel's timeout) the same pids are killed before the test dies.
//
// The criu binary is //tools:criu from the runfiles, or $CRPP_E2E_CRIU.
#ifndef CRPP_TESTS_E2E_HARNESS_H_
#define CRPP_TESTS_E2E_HARNESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tools/common/process.h"

namespace crpp::e2e {

// $TEST_SRCDIR/$TEST_WORKSPACE/PATH (or the runfiles next to this binary).
std::string Runfile(const std::string& path);

// $CRPP_E2E_CRIU, else //tools:criu from the runfiles.
std::string CriuBinary();

// A wait status in words: "exit status 1", "killed by signal 9 (Killed)".
using tools::DescribeWaitStatus;

// The pids whose parent is this process, zombies included: what a failed
// criu left behind becomes our child (the harness is a child subreaper).
std::vector<pid_t> Children();

// What can be seen of a task from outside and must not change when a dump
// fails: its memory map (/proc/PID/maps: a page left mapped by the dumper
// shows here), its open files (/proc/PID/fd: an fd left open by the dumper),
// and from /proc/PID/status its signal masks (pending, blocked, ignored,
// caught), tracer and thread count.
absl::StatusOr<std::string> OutsideView(pid_t pid);

// OK if OutsideView(PID) is BEFORE; else an error naming the first line
// that differs.
absl::Status ExpectOutsideView(pid_t pid, const std::string& before);

struct SessionOptions {
  // Leaves the program in the harness's session and process group, and
  // passes --shell-job to criu; otherwise the program calls setsid().
  bool shell_job = false;
  // NAME=VALUE pairs added to the program's environment.
  std::vector<std::string> env;
};

class Session {
 public:
  // PROGRAM names a binary of //tests/e2e/programs. Files go to
  // $TEST_TMPDIR/NAME (emptied first): out/ (the program's OUTDIR, with its
  // report), images-N/ (one per dump, with dump.log and restore.log),
  // program.stdout, program.stderr, criu-*.out.
  Session(const std::string& name, const std::string& program, SessionOptions options = {});
  explicit Session(const std::string& program) : Session(program, program) {}
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Starts the program (stdin /dev/null, stdout/stderr to files) and waits
  // up to 10 s for "ready".
  absl::Status Start();

  // `criu dump -t PID -D images-N -v4 -o dump.log ARGS...`. Unless ARGS hold
  // -R/--leave-running or -s/--leave-stopped, the program must then be gone
  // (it is reaped here, so its pid is free for the restore).
  absl::Status Dump(const std::vector<std::string>& args = {});

  // `criu restore -D images-N -d --pidfile images-N/pid -v4 -o restore.log
  // ARGS...` from the last dump's images; the pidfile must name the pid the
  // program had.
  absl::Status Restore(const std::vector<std::string>& args = {});

  // How a criu run ended and what it printed (stdout and stderr).
  struct CriuRun {
    int wait_status = 0;
    std::string output;
  };
  // Runs `criu ARGS...` like Dump() and Restore() do (its output goes to
  // criu-N-WHAT.out, which Diagnostics() shows) and returns how it ended,
  // success or not: for tests of failures.
  absl::StatusOr<CriuRun> RunCriuAnyway(const std::string& what, std::vector<std::string> args);

  // Sends SIG to the program (the original or the restored one).
  absl::Status Signal(int sig);

  // The program is alive, not stopped, and its loop runs: its count of
  // voluntary context switches (one per sleep) grows over 200 ms.
  absl::Status ExpectRunning();

  // The program is in a stopped state ('T') and does not advance over 200 ms.
  absl::Status ExpectStopped();

  // Sends SIGUSR1, waits up to 10 s for the next verdict line in the report
  // and for the program's exit. VerdictLine returns the line whatever it says
  // (an error only if there is none, or the exit status does not match it);
  // Verdict also requires "OK" and exit status 0.
  absl::StatusOr<std::string> VerdictLine();
  absl::Status Verdict();
  const std::string& last_verdict() const { return last_verdict_; }

  // What helps after a failure: tails of every log, the report, stderr.
  std::string Diagnostics() const;

  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  const std::string& out_dir() const { return out_dir_; }
  // The images of dump N (1 is the first); dumps() dumps so far.
  std::string ImagesDir(int n) const;
  int dumps() const { return dumps_; }

 private:
  absl::StatusOr<int> RunCriu(const std::string& what, std::vector<std::string> args);

  std::string name_;
  std::string program_;
  SessionOptions options_;
  std::string dir_;
  std::string out_dir_;
  pid_t pid_ = -1;         // the program: original, then restored
  bool is_child_ = false;  // pid_ is our child and not reaped yet
  int dumps_ = 0;
  int criu_runs_ = 0;
  int verdicts_seen_ = 0;
  std::string last_verdict_;
};

}  // namespace crpp::e2e

// For Boost.Test cases: requires EXPR (an absl::Status) to be OK, else fails
// the test with the status and SESSION's diagnostics.
#define E2E_REQUIRE_OK(session, expr)                                                         \
  do {                                                                                        \
    const ::absl::Status e2e_status = (expr);                                                 \
    BOOST_REQUIRE_MESSAGE(e2e_status.ok(), #expr " failed: " << e2e_status.ToString() << "\n" \
                                                             << (session).Diagnostics());     \
  } while (0)

#endif  // CRPP_TESTS_E2E_HARNESS_H_
