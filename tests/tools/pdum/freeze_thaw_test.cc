// pdum-criu shell freeze and shell thaw on real processes: a goblin frozen
// (found by --pgrep) and thawed on new pipes, the thaw's own stdio, with its
// count going on and thaw exiting with its exit code; a goblin thawed
// detached on a FIFO and files; a thaw refused while the frozen job still
// runs (the log's tail, criu's exit code); a job of one terminal thawed on
// another; terminals that cannot come back refused.
#define BOOST_TEST_MODULE pdum_freeze_thaw
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <string>

#include "core/strings.h"
#include "tests/tools/pdum/pdum_testing.h"

namespace crpp::pdum_test {
namespace {

BOOST_GLOBAL_FIXTURE(Reaper);

std::string Pid(pid_t pid) { return std::to_string(pid); }

BOOST_AUTO_TEST_CASE(goblin_frozen_then_thawed_on_new_pipes) {
  const std::string dir = FreshPath("thaw-pipes");
  const std::string name = "pdum-goblin-" + Pid(getpid()) + "-pipes";
  Goblin g;
  BOOST_REQUIRE(g.Start(name));
  Ran frozen = RunPdum({"shell", "freeze", "--dir", dir, "--pgrep", "^" + name + "$",
                        "--no-leave-running", "-v", "4"});
  BOOST_TEST_MESSAGE(frozen.all());
  BOOST_REQUIRE_MESSAGE(frozen.exit_code() == 0, frozen.all());
  BOOST_TEST(Contains(frozen.out, "Freezing PID " + Pid(g.pid) + " into " + dir));
  BOOST_TEST(Contains(frozen.out, "$ criu dump -D " + dir + " -t " + Pid(g.pid)));
  BOOST_TEST(Contains(frozen.out, "Freeze complete. Log: " + dir + "/freeze." + Pid(g.pid)));
  BOOST_TEST(Contains(frozen.out, "Log tail"));  // --show-tail is the default
  BOOST_TEST(Exists(dir + "/pstree.img"));
  auto gone = WaitFor(g.pid, 5000);  // killed by the freeze: reaped here, its pid freed
  BOOST_REQUIRE(gone.has_value());
  BOOST_TEST((WIFSIGNALED(*gone) && WTERMSIG(*gone) == SIGKILL));

  // shell thaw on three new pipes: they are its stdin, stdout and stderr.
  Pipe in, out, err;
  const std::string pidfile = dir + "/thawed.pid";
  pid_t thaw = Spawn({PdumBinary(), "shell", "thaw", "--dir", dir, "--pidfile", pidfile}, in.r,
                     out.w, err.w, false);
  in.CloseRead(), out.CloseWrite(), err.CloseWrite();
  std::string said;
  BOOST_TEST(ReadLineStartingWith(out.r, "Thawed: pid", &said) == "Thawed: pid " + Pid(g.pid),
             said);
  BOOST_TEST(Contains(said, "stdin (pipe:["));
  BOOST_TEST(Contains(said, "<- thaw's stdin"));
  BOOST_TEST(Contains(said, "--inherit-fd 'fd[0]:pipe:["));
  BOOST_TEST(ReadLine(out.r).starts_with("Log: " + dir + "/restore."));
  WriteLine(in.w, "world");
  BOOST_TEST(ReadLine(out.r) == Answer("world", 2));
  BOOST_TEST(ReadLine(err.r) == "count 2");
  WriteLine(in.w, "once more");
  BOOST_TEST(ReadLine(out.r) == Answer("once more", 3));
  BOOST_TEST(ReadLine(err.r) == "count 3");
  BOOST_TEST(std::string(Trim(ReadFile(pidfile))) == Pid(g.pid));
  // End of input: the goblin exits 0, and so does thaw, which waited for it.
  in.CloseWrite();
  auto status = WaitFor(thaw, 10000);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "shell thaw did not end with the goblin");
  BOOST_TEST(WIFEXITED(*status));
  BOOST_TEST(WEXITSTATUS(*status) == 0);
  BOOST_TEST(Contains(ReadToEnd(out.r), "pid " + Pid(g.pid) + " exited with status 0"));
  BOOST_TEST(kill(g.pid, 0) != 0);
}

BOOST_AUTO_TEST_CASE(thawed_detached_on_a_fifo_and_files_after_a_refused_thaw) {
  const std::string dir = FreshPath("thaw-files");
  Goblin g;
  BOOST_REQUIRE(g.Start());
  // --leave-running (the default): it answers on, the images hold count 1.
  Ran frozen = RunPdum({"shell", "freeze", "-d", dir, "--pid", Pid(g.pid), "--hide-tail"});
  BOOST_REQUIRE_MESSAGE(frozen.exit_code() == 0, frozen.all());
  BOOST_TEST(Contains(frozen.out, "--leave-running"));
  BOOST_TEST(!Contains(frozen.out, "Log tail"));
  BOOST_TEST(g.Talk("still here", 2) == "");

  // Its pid is taken: the thaw fails with criu's exit code, the log's tail and a hint.
  Ran refused = RunPdum({"shell", "thaw", "--dir", dir, "--stdin", "/dev/null"});
  BOOST_TEST(refused.exit_code() == 1, refused.all());
  BOOST_TEST(Contains(refused.err, "Thaw failed (exit 1): "), refused.err);
  BOOST_TEST(Contains(refused.err, "pid " + Pid(g.pid) + " is in use"), refused.err);
  BOOST_TEST(Contains(refused.err, "Hint: pid " + Pid(g.pid) + " still runs"), refused.err);
  BOOST_TEST(Contains(refused.err, "Log tail ("), refused.err);
  BOOST_TEST(g.Talk("unharmed", 3) == "");

  KillAndReap(g.pid);
  const std::string fifo = dir + "/in.fifo", out = dir + "/out.txt", err = dir + "/err.txt";
  BOOST_REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  Pipe said;
  pid_t thaw = Spawn({PdumBinary(), "shell", "thaw", "--dir", dir, "--detach", "--stdin", fifo,
                      "--stdout", out, "--stderr", err, "--pidfile", dir + "/pid"},
                     -1, said.w, said.w, false);
  said.CloseWrite();
  // As `job < in.fifo` in a shell, the thaw waits for a writer.
  const int feed = open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
  BOOST_REQUIRE(feed >= 0);
  auto status = WaitFor(thaw, 10000);
  const std::string text = ReadToEnd(said.r, 1000);
  BOOST_TEST_MESSAGE(text);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(WIFEXITED(*status));
  BOOST_TEST(WEXITSTATUS(*status) == 0, text);
  BOOST_TEST(Contains(text, "Thawed: pid " + Pid(g.pid) + " (detached"), text);
  BOOST_TEST(Contains(text, "stdin (pipe:["), text);
  BOOST_TEST(Contains(text, "<- " + fifo), text);
  BOOST_TEST(Contains(text, " -d "), text);
  BOOST_TEST(Contains(text, "3<" + fifo), text);
  // Restored from the images: count 1 then, so this is its 2nd line.
  WriteLine(feed, "from the fifo");
  std::string got;
  for (int i = 0; i < 500 && !Contains(got = ReadFile(out), "\n"); ++i) usleep(10000);
  BOOST_TEST(got == Answer("from the fifo", 2) + "\n");
  BOOST_TEST(ReadFile(err) == "count 2\n");
  close(feed);
  // Detached: it came to us, the subreaper, once thaw's helper exited.
  auto ended = WaitFor(g.pid, 5000);
  BOOST_REQUIRE(ended.has_value());
  BOOST_TEST((WIFEXITED(*ended) && WEXITSTATUS(*ended) == 0));
}

// A terminal with a "shell" (session leader) running a job in its own
// process group in the foreground, as an interactive shell runs one.
struct Terminal {
  int master = -1;
  pid_t shell = -1, job = -1;

  bool Open() {
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    return master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0;
  }
  std::string SlaveName() const { return ptsname(master); }
  // Starts the shell, which starts ARGV as its foreground job; the job's pid.
  pid_t RunJob(const std::vector<std::string>& argv, const std::string& argv0) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return -1;
    const std::string slave = SlaveName();
    shell = fork();
    if (shell == 0) {
      close(master);  // the terminal's other side is the test's, not the shell's
      setsid();
      int tty = open(slave.c_str(), O_RDWR);  // our controlling terminal now
      pid_t child = Spawn(argv, tty, tty, tty, false, argv0, [] { setpgid(0, 0); });
      setpgid(child, child);
      signal(SIGTTOU, SIG_IGN);
      tcsetpgrp(tty, child);
      (void)!write(report[1], &child, sizeof child);
      waitpid(child, nullptr, 0);
      _exit(0);
    }
    close(report[1]);
    if (read(report[0], &job, sizeof job) != sizeof job) job = -1;
    close(report[0]);
    return job;
  }
  // What the terminal shows within TIMEOUT_MS of silence.
  std::string Screen(int timeout_ms = 1000) { return ReadToEnd(master, timeout_ms); }
  ~Terminal() {
    if (job > 0) kill(job, SIGKILL);
    KillAndReap(shell);
    if (master >= 0) close(master);
  }
};

BOOST_AUTO_TEST_CASE(job_of_one_terminal_thawed_on_another) {
  const std::string dir = FreshPath("thaw-terminal");
  const std::string name = "pdum-goblin-" + Pid(getpid()) + "-tty";
  Terminal a, b;
  BOOST_REQUIRE(a.Open() && b.Open());
  const pid_t job = a.RunJob({GoblinBinary()}, name);
  BOOST_REQUIRE(job > 0);
  usleep(100000);
  WriteLine(a.master, "hello");
  BOOST_TEST(Contains(a.Screen(), "1:HELLO"));

  Ran frozen =
      RunPdum({"shell", "freeze", "--dir", dir, "--pgrep", "^" + name + "$", "--no-leave-running"});
  BOOST_REQUIRE_MESSAGE(frozen.exit_code() == 0, frozen.all());
  BOOST_TEST(Contains(frozen.out, "runs on the terminal " + a.SlaveName()), frozen.out);
  BOOST_TEST(Contains(frozen.out, "--shell-job"));
  auto shell_done = WaitFor(a.shell, 5000);  // its job is gone: the shell reaped it and ended
  BOOST_TEST(shell_done.has_value());
  a.job = -1;

  // Terminal b: shell thaw as its session's first program, on it.
  const std::string slave_b = b.SlaveName();
  const std::string pdum = PdumBinary();
  b.shell = fork();
  if (b.shell == 0) {
    setsid();
    int tty = open(slave_b.c_str(), O_RDWR);
    dup2(tty, 0), dup2(tty, 1), dup2(tty, 2);
    execl(pdum.c_str(), pdum.c_str(), "shell", "thaw", "--dir", dir.c_str(), "--hide-command",
          nullptr);
    _exit(127);
  }
  b.job = job;
  std::string screen = b.Screen(1500);
  BOOST_TEST(Contains(screen, "terminal (" + a.SlaveName() + ") <- thaw's terminal"), screen);
  BOOST_TEST(Contains(screen, "Thawed: pid " + Pid(job)), screen);
  // The job has terminal b's foreground: it reads what is typed there.
  WriteLine(b.master, "world");
  screen = b.Screen();
  BOOST_TEST(Contains(screen, "2:WORLD"), screen);
  BOOST_TEST(Contains(screen, "count 2"), screen);
  // Ctrl-Z stops the job, and thaw with it; no shell here can continue
  // thaw (the kernel ignores its SIGTSTP), so it goes on with the job at once.
  (void)!write(b.master, "\x1a", 1);
  screen = b.Screen();
  BOOST_TEST(Contains(screen, "pid " + Pid(job) + " stopped ("), screen);
  WriteLine(b.master, "again");
  screen = b.Screen();
  BOOST_TEST(Contains(screen, "3:AGAIN"), screen);
  // Ctrl-D: end of input for the foreground job; thaw ends with it.
  (void)!write(b.master, "\x04", 1);
  screen = b.Screen();
  BOOST_TEST(Contains(screen, "pid " + Pid(job) + " exited with status 0"), screen);
  auto thaw = WaitFor(b.shell, 5000);
  BOOST_REQUIRE(thaw.has_value());
  BOOST_TEST((WIFEXITED(*thaw) && WEXITSTATUS(*thaw) == 0));
  b.job = -1;
}

BOOST_AUTO_TEST_CASE(terminals_that_cannot_come_back_are_refused) {
  const std::string dir = FreshPath("refused-terminal");
  // A job holding a pty master: it is a terminal itself.
  static int master = -1;
  master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  BOOST_REQUIRE(master >= 0);
  Goblin g;
  g.pid = Spawn({GoblinBinary()}, g.in.r, g.out.w, g.err.w, true, "",
                [] {  // fd 3: the master, kept across exec (dup2 onto itself would not)
                  master == 3 ? fcntl(3, F_SETFD, 0) : dup2(master, 3);
                });
  g.in.CloseRead(), g.out.CloseWrite(), g.err.CloseWrite();
  BOOST_REQUIRE(g.Talk("hello", 1) == "");
  Ran refused = RunPdum({"shell", "freeze", "--dir", dir, "--pid", Pid(g.pid)});
  BOOST_TEST(refused.exit_code() == 1, refused.all());
  BOOST_TEST(Contains(refused.err, "Cannot freeze pid " + Pid(g.pid) + ": pid " + Pid(g.pid) +
                                       " fd 3 is the master side of a pseudo-terminal"),
             refused.err);
  BOOST_TEST(Contains(refused.err, "Hint: freeze the job that runs inside that terminal"));
  BOOST_TEST(Contains(refused.err, "--no-validate-tty"));
  BOOST_TEST(!Exists(dir + "/pstree.img"));
  BOOST_TEST(g.Talk("untouched", 2) == "");
  // --no-validate-tty goes on to the engine, which refuses a pty master
  // whose slave is not in the tree too, and leaves the job running.
  Ran forced = RunPdum({"shell", "freeze", "--dir", dir, "--pid", Pid(g.pid), "--no-validate-tty"});
  BOOST_TEST(forced.exit_code() == 1, forced.all());
  BOOST_TEST(Contains(forced.err, "fd 3 is the master of pty"), forced.err);
  BOOST_TEST(!Exists(dir + "/pstree.img"));
  BOOST_TEST(g.Talk("still running", 3) == "");
  KillAndReap(g.pid);
  close(master);

  // The first program of a terminal (a login shell): it leads the terminal's session.
  Terminal t;
  BOOST_REQUIRE(t.Open());
  const pid_t job = t.RunJob({GoblinBinary()}, "");
  BOOST_REQUIRE(job > 0);
  Ran leader = RunPdum({"shell", "freeze", "--dir", dir + "-2", "--pid", Pid(t.shell)});
  BOOST_TEST(leader.exit_code() == 1, leader.all());
  BOOST_TEST(Contains(leader.err, "leads the session of its terminal"), leader.err);
  BOOST_TEST(Contains(leader.err, "Hint: freeze a job this shell runs instead"), leader.err);
}

}  // namespace
}  // namespace crpp::pdum_test
