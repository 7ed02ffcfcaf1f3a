// What the pdum-criu tests share: running the binary, goblins (processes
// whose stdin, stdout and stderr are pipes of the test's) and reading their
// answers with a timeout, and not leaving any process behind.
//
// The test process is a child subreaper: a job thawed detached (or beamed)
// and beam's cleanup watcher come back to it as children when pdum-criu
// exits, so that it can reap them, and ~Reaper kills (SIGKILL, by pid) and
// reaps whatever child is left.
#ifndef CRPP_TESTS_TOOLS_PDUM_PDUM_TESTING_H_
#define CRPP_TESTS_TOOLS_PDUM_PDUM_TESTING_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace crpp::pdum_test {

// The binaries, from the runfiles.
std::string PdumBinary();
std::string GoblinBinary();

// $TEST_TMPDIR/NAME, emptied (not created).
std::string FreshPath(const std::string& name);

// Makes the test a child subreaper; at the end, kills and reaps every child.
struct Reaper {
  Reaper();
  ~Reaper();
};

struct Pipe {
  int r = -1, w = -1;
  Pipe();  // O_CLOEXEC ends
  ~Pipe();
  void CloseRead();
  void CloseWrite();
};

// Starts ARGV (argv[0] shown as ARGV0 when not empty) with fds 0, 1, 2 on
// IN, OUT, ERR (-1: /dev/null), in a session of its own when NEW_SESSION,
// after BEFORE_EXEC (in the child) when given. Returns its pid.
pid_t Spawn(const std::vector<std::string>& argv, int in, int out, int err, bool new_session,
            const std::string& argv0 = "", void (*before_exec)() = nullptr);

// Waits up to TIMEOUT_MS for our child PID to end; its wait status, or
// nullopt (it runs on).
std::optional<int> WaitFor(pid_t pid, int timeout_ms);

// Kills our child PID (SIGKILL) and reaps it; nothing if it is gone.
void KillAndReap(pid_t pid);

// One line from FD without its newline, waiting up to TIMEOUT_MS; what came
// followed by "(no answer)" on timeout or EOF.
std::string ReadLine(int fd, int timeout_ms = 5000);

// Lines from FD until one starts with PREFIX: that line, or "(no answer)"
// after the others (kept in SKIPPED, which may be null).
std::string ReadLineStartingWith(int fd, const std::string& prefix, std::string* skipped,
                                 int timeout_ms = 5000);

// Everything FD gives until EOF (up to TIMEOUT_MS).
std::string ReadToEnd(int fd, int timeout_ms = 5000);

void WriteLine(int fd, const std::string& line);

struct Ran {
  int status = -1;  // wait status
  std::string out, err;
  int exit_code() const;  // -1 when killed
  std::string all() const { return out + err; }
};

// Runs pdum-criu ARGS to its end (stdin /dev/null, at most 60 s), with
// BEFORE_EXEC in the child when given.
Ran RunPdum(const std::vector<std::string>& args, void (*before_exec)() = nullptr);

// A goblin on three pipes of ours, in a session of its own, as ARGV0 (for
// --pgrep). It answered "hello" ("1:HELLO") when Start returns true.
struct Goblin {
  pid_t pid = -1;
  Pipe in, out, err;
  bool Start(const std::string& argv0 = "");
  // Feeds LINE and checks the N-th answer on stdout and stderr; "" or what went wrong.
  std::string Talk(const std::string& line, int n);
};

// The N-th answer of a goblin to LINE: "N:LINE IN UPPER CASE".
std::string Answer(const std::string& line, int n);

bool Contains(const std::string& s, const std::string& part);
bool Exists(const std::string& path);
std::string ReadFile(const std::string& path);

}  // namespace crpp::pdum_test

#endif  // CRPP_TESTS_TOOLS_PDUM_PDUM_TESTING_H_
