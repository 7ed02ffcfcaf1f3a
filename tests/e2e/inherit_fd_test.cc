// criu restore --inherit-fd: a goblin (a process whose stdin, stdout and
// stderr are pipes of the caller's) is dumped with the CLI, and restored with
// three new pipes of the caller's standing for the old ones
// (--inherit-fd fd[N]:pipe:[INO]); it answers on them, its count going on.
// The same with a terminal: a pty slave of the caller's, dumped as
// --external tty[RDEV:DEV].
#define BOOST_TEST_MODULE inherit_fd
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace {

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int p[2];
    BOOST_REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    r = p[0];
    w = p[1];
  }
  ~Pipe() {
    if (r >= 0) close(r);
    if (w >= 0) close(w);
  }
};

uint64_t Inode(int fd) {
  struct stat st;
  BOOST_REQUIRE(fstat(fd, &st) == 0);
  return st.st_ino;
}

// Runs ARGV with `keep` fds left open (the others close on exec) and returns
// its wait status.
int Run(const std::vector<std::string>& argv, const std::vector<int>& keep = {}) {
  pid_t pid = fork();
  if (pid == 0) {
    for (int fd : keep) fcntl(fd, F_SETFD, 0);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = -1;
  waitpid(pid, &status, 0);
  return status;
}

// One line from FD, waiting up to 5 s for it.
std::string ReadLine(int fd) {
  std::string line;
  for (int waited = 0; waited < 5000;) {
    char c;
    ssize_t n = read(fd, &c, 1);
    if (n == 1) {
      if (c == '\n') return line;
      line += c;
    } else {
      usleep(5000);
      waited += 5;
    }
  }
  return line + "(timeout)";
}

void WriteLine(int fd, const std::string& s) {
  std::string l = s + "\n";
  BOOST_REQUIRE(write(fd, l.data(), l.size()) == static_cast<ssize_t>(l.size()));
}

std::string Tail(const std::string& path) {
  std::string cmd = "tail -5 " + path + " 2>&1";
  std::string out;
  if (FILE* f = popen(cmd.c_str(), "r")) {
    char buf[512];
    while (fgets(buf, sizeof buf, f)) out += buf;
    pclose(f);
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(goblin_gets_new_pipes) {
  // The restored goblin is no child of ours once criu restore -d returns:
  // it comes to us when criu exits, to be reaped.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/inherit_fd";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/images");
  const std::string goblin = crpp::e2e::Runfile("tests/e2e/programs/goblin");
  const std::string criu = crpp::e2e::CriuBinary();

  Pipe in, out, err;
  fcntl(out.r, F_SETFL, O_NONBLOCK);
  fcntl(err.r, F_SETFL, O_NONBLOCK);
  const pid_t pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    setsid();
    dup2(in.r, 0);
    dup2(out.w, 1);
    dup2(err.w, 2);
    execl(goblin.c_str(), goblin.c_str(), nullptr);
    _exit(127);
  }
  close(in.r), in.r = -1;
  close(out.w), out.w = -1;
  close(err.w), err.w = -1;
  WriteLine(in.w, "hello");
  BOOST_TEST(ReadLine(out.r) == "1:HELLO");
  BOOST_TEST(ReadLine(err.r) == "count 1");

  const uint64_t in_ino = Inode(in.w), out_ino = Inode(out.r), err_ino = Inode(err.r);
  int st = Run(
      {criu, "dump", "-t", std::to_string(pid), "-D", dir + "/images", "-o", "dump.log", "-v4"});
  BOOST_REQUIRE_MESSAGE(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                        "dump failed:\n"
                            << Tail(dir + "/images/dump.log"));
  waitpid(pid, &st, 0);  // the dump killed it

  Pipe in2, out2, err2;
  fcntl(out2.r, F_SETFL, O_NONBLOCK);
  fcntl(err2.r, F_SETFL, O_NONBLOCK);
  auto inherit = [](int fd, uint64_t ino) {
    return "fd[" + std::to_string(fd) + "]:pipe:[" + std::to_string(ino) + "]";
  };
  // The wrong end of a pipe is refused, and nothing is left behind.
  st = Run({criu, "restore", "-D", dir + "/images", "-d", "-o", "restore-wrong.log", "--inherit-fd",
            inherit(in2.w, in_ino)},
           {in2.w});
  BOOST_TEST(!(WIFEXITED(st) && WEXITSTATUS(st) == 0));
  BOOST_TEST(Tail(dir + "/images/restore-wrong.log").find("the given fd is the other one") !=
             std::string::npos);
  BOOST_TEST(kill(pid, 0) != 0);

  st = Run({criu, "restore", "-D", dir + "/images", "-d", "-o", "restore.log", "--inherit-fd",
            inherit(in2.r, in_ino), "--inherit-fd", inherit(out2.w, out_ino), "--inherit-fd",
            inherit(err2.w, err_ino)},
           {in2.r, out2.w, err2.w});
  BOOST_REQUIRE_MESSAGE(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                        "restore failed:\n"
                            << Tail(dir + "/images/restore.log"));
  close(in2.r), in2.r = -1;
  close(out2.w), out2.w = -1;
  close(err2.w), err2.w = -1;
  WriteLine(in2.w, "world");
  BOOST_TEST(ReadLine(out2.r) == "2:WORLD");
  BOOST_TEST(ReadLine(err2.r) == "count 2");
  // EOF on its new stdin ends it.
  close(in2.w), in2.w = -1;
  pid_t got = -1;
  for (int i = 0; i < 500 && (got = waitpid(pid, &st, WNOHANG)) == 0; ++i) usleep(10000);
  BOOST_TEST(got == pid);
  BOOST_TEST((WIFEXITED(st) && WEXITSTATUS(st) == 0));
  if (got != pid) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
}

namespace {

// A pty of the test's: the master stays here, the slave is for a goblin.
struct Pty {
  int master = -1, slave = -1;
  Pty() {
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    BOOST_REQUIRE(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0);
    slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    BOOST_REQUIRE(slave >= 0);
    fcntl(master, F_SETFL, O_NONBLOCK);
  }
  ~Pty() {
    if (slave >= 0) close(slave);
    if (master >= 0) close(master);
  }
  // criu's name of the slave: tty[RDEV:DEV] in hex.
  std::string Key() const {
    struct stat st;
    BOOST_REQUIRE(fstat(slave, &st) == 0);
    char key[64];
    snprintf(key, sizeof key, "tty[%llx:%llx]", static_cast<unsigned long long>(st.st_rdev),
             static_cast<unsigned long long>(st.st_dev));
    return key;
  }
};

// The controlling terminal of PID (/proc/PID/stat: tty_nr and tpgid).
struct Ctty {
  unsigned long device = 0;
  long foreground = 0;
};
Ctty CttyOf(pid_t pid) {
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "re");
  char line[1024] = {};
  if (f != nullptr) {
    if (fgets(line, sizeof line, f) == nullptr) line[0] = 0;
    fclose(f);
  }
  Ctty c;
  const char* paren = strrchr(line, ')');
  char state;
  int ppid, pgrp, session;
  if (paren != nullptr) {
    sscanf(paren + 1, " %c %d %d %d %lu %ld", &state, &ppid, &pgrp, &session, &c.device,
           &c.foreground);
  }
  return c;
}

}  // namespace

// A goblin whose stdin, stdout, stderr and controlling terminal are a pty
// slave whose master the test holds: dumped with --external tty[RDEV:DEV],
// restored with the slave of a new pty given as --inherit-fd
// fd[N]:tty[RDEV:DEV], which gets the old one's termios (echo off) and window
// size and becomes the goblin's controlling terminal.
BOOST_AUTO_TEST_CASE(goblin_gets_a_new_terminal) {
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/inherit_fd_tty";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/images");
  const std::string goblin = crpp::e2e::Runfile("tests/e2e/programs/goblin");
  const std::string criu = crpp::e2e::CriuBinary();

  Pty old_pty;
  termios t;
  BOOST_REQUIRE(tcgetattr(old_pty.slave, &t) == 0);
  t.c_lflag &= ~(ECHO | ECHONL);
  BOOST_REQUIRE(tcsetattr(old_pty.slave, TCSANOW, &t) == 0);
  winsize ws = {40, 132, 0, 0};
  BOOST_REQUIRE(ioctl(old_pty.slave, TIOCSWINSZ, &ws) == 0);
  const pid_t pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    setsid();
    if (ioctl(old_pty.slave, TIOCSCTTY, 0) != 0) _exit(126);
    for (int fd = 0; fd < 3; ++fd) dup2(old_pty.slave, fd);
    execl(goblin.c_str(), goblin.c_str(), nullptr);
    _exit(127);
  }
  WriteLine(old_pty.master, "hello");
  BOOST_TEST(ReadLine(old_pty.master) == "1:HELLO\r");
  BOOST_TEST(ReadLine(old_pty.master) == "count 1\r");

  const std::string key = old_pty.Key();
  const std::string images = dir + "/images";
  // Without --external the slave of a master outside the tree is refused.
  int st = Run({criu, "dump", "-t", std::to_string(pid), "-D", images, "-o", "refused.log"});
  BOOST_TEST(!(WIFEXITED(st) && WEXITSTATUS(st) == 0));
  BOOST_TEST(Tail(images + "/refused.log").find("--external " + key) != std::string::npos);
  BOOST_REQUIRE(kill(pid, 0) == 0);
  st = Run({criu, "dump", "-t", std::to_string(pid), "-D", images, "-o", "dump.log", "-v4",
            "--external", key});
  BOOST_REQUIRE_MESSAGE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "dump failed:\n"
                                                                   << Tail(images + "/dump.log"));
  waitpid(pid, &st, 0);  // the dump killed it

  Pty new_pty;  // default termios: echo on, 0x0 window
  // Without the terminal that stands for it, restore refuses and names it.
  st = Run({criu, "restore", "-D", images, "-d", "-o", "restore-refused.log"});
  BOOST_TEST(!(WIFEXITED(st) && WEXITSTATUS(st) == 0));
  BOOST_TEST(Tail(images + "/restore-refused.log").find("--inherit-fd fd[N]:" + key) !=
             std::string::npos);
  BOOST_TEST(kill(pid, 0) != 0);
  st = Run({criu, "restore", "-D", images, "-d", "-o", "restore.log", "--inherit-fd",
            "fd[" + std::to_string(new_pty.slave) + "]:" + key},
           {new_pty.slave});
  BOOST_REQUIRE_MESSAGE(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                        "restore failed:\n"
                            << Tail(images + "/restore.log"));
  winsize now{};
  BOOST_REQUIRE(ioctl(new_pty.slave, TIOCGWINSZ, &now) == 0);
  struct stat slave_st;
  BOOST_REQUIRE(fstat(new_pty.slave, &slave_st) == 0);
  const Ctty ctty = CttyOf(pid);
  BOOST_TEST(ctty.device == slave_st.st_rdev);
  BOOST_TEST(ctty.foreground == pid);
  BOOST_TEST(now.ws_row == 40);
  BOOST_TEST(now.ws_col == 132);
  close(new_pty.slave), new_pty.slave = -1;
  WriteLine(new_pty.master, "world");
  // No echo of "world": the old terminal's termios came along.
  BOOST_TEST(ReadLine(new_pty.master) == "2:WORLD\r");
  BOOST_TEST(ReadLine(new_pty.master) == "count 2\r");
  // Closing the master hangs the goblin's terminal up: it ends.
  close(new_pty.master), new_pty.master = -1;
  pid_t got = -1;
  for (int i = 0; i < 500 && (got = waitpid(pid, &st, WNOHANG)) == 0; ++i) usleep(10000);
  BOOST_TEST(got == pid);
  if (got != pid) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
}
