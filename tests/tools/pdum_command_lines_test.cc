// The command lines scripts such as pdum-criu send to criu, criu-ns and
// crit, run against our binaries installed side by side with
// //tools:install:
//
//   criu dump -D DIR -t PID -o LOG -v4 --shell-job --leave-running
//   crit show fdinfo-N.img -f json ; crit show -i files.img --pretty
//   criu-ns restore -D DIR -o LOG --pidfile FILE --shell-job
//       --inherit-fd fd[0]:pipe:[INO] --inherit-fd fd[1]:pipe:[INO] --inherit-fd fd[2]:pipe:[INO]
//   criu-ns dump -t PID ... ; criu-ns restore -d --pidfile FILE ...
//
// A goblin (stdin, stdout and stderr on pipes) is dumped and left running;
// criu-ns restores a copy of it, in a pid namespace of its own, while the
// original still holds the pid; the copy's stdio are the new pipes criu-ns
// was given as its own, and it answers with its count going on. The copy is
// dumped again through criu-ns dump (from outside its namespace) and
// restored detached, the pidfile holding its pid as the caller sees it.
#define BOOST_TEST_MODULE pdum_command_lines
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/json.h"
#include "tests/e2e/harness.h"

namespace {

std::string TmpDir() {
  const char* t = getenv("TEST_TMPDIR");
  return t != nullptr ? t : "/tmp";
}

// Runs argv with fds 0-2 as given (-1: /dev/null), the others closed and an
// empty environment; returns its pid.
pid_t Start(const std::vector<std::string>& argv, int in = -1, int out = -1, int err = -1,
            bool new_session = false) {
  pid_t pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    if (new_session) setsid();
    int null = open("/dev/null", O_RDWR);
    dup2(in >= 0 ? in : null, 0);
    dup2(out >= 0 ? out : null, 1);
    dup2(err >= 0 ? err : null, 2);
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    std::vector<char*> c;
    for (const std::string& a : argv) c.push_back(const_cast<char*>(a.c_str()));
    c.push_back(nullptr);
    // No environment at all (sudo resets it): nothing may depend on it,
    // not even PATH (criu-ns runs the criu beside it).
    char* no_env[] = {nullptr};
    execve(c[0], c.data(), no_env);
    _exit(127);
  }
  return pid;
}

int Wait(pid_t pid) {
  int status = -1;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Runs argv to its end; its stdout.
std::string Capture(const std::vector<std::string>& argv, int* code) {
  int p[2];
  BOOST_REQUIRE(pipe2(p, O_CLOEXEC) == 0);
  pid_t pid = Start(argv, -1, p[1], -1);
  close(p[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(p[0], buf, sizeof buf)) > 0;) out.append(buf, n);
  close(p[0]);
  *code = Wait(pid);
  return out;
}

std::string ReadLine(int fd) {
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    char c;
    ssize_t n = read(fd, &c, 1);
    if (n == 1) {
      if (c == '\n') return line;
      line += c;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return line + "(timeout)";
}

void WriteLine(int fd, const std::string& s) {
  std::string l = s + "\n";
  BOOST_REQUIRE(write(fd, l.data(), l.size()) == static_cast<ssize_t>(l.size()));
}

struct Stdio {
  int task[3];    // the goblin's ends
  int caller[3];  // ours: write to [0], read [1] and [2]
  Stdio() {
    for (int n = 0; n < 3; ++n) {
      int p[2];
      BOOST_REQUIRE(pipe2(p, O_CLOEXEC) == 0);
      task[n] = n == 0 ? p[0] : p[1];
      caller[n] = n == 0 ? p[1] : p[0];
      fcntl(caller[n], F_SETFL, O_NONBLOCK);
    }
  }
  void CloseTaskEnds() {
    for (int& fd : task) {
      if (fd >= 0) close(fd);
      fd = -1;
    }
  }
  ~Stdio() {
    CloseTaskEnds();
    for (int fd : caller) close(fd);
  }
  // Feeds a line, returns "stdout answer|stderr answer".
  std::string Talk(const std::string& line) {
    WriteLine(caller[0], line);
    std::string out = ReadLine(caller[1]);
    return out + "|" + ReadLine(caller[2]);
  }
};

// The images' pipe inode of the root's fds 0, 1 and 2, found as pdum-criu
// finds it: crit show fdinfo-N.img -f json, crit show -i files.img --pretty.
std::map<int, uint64_t> StdioPipes(const std::string& bin, const std::string& dir) {
  int code = 0;
  std::string fdinfo = Capture({bin + "/crit", "show", dir + "/fdinfo-1.img", "-f", "json"}, &code);
  BOOST_REQUIRE_MESSAGE(code == 0, "crit show fdinfo-1.img -f json");
  std::string files = Capture({bin + "/crit", "show", "-i", dir + "/files.img", "--pretty"}, &code);
  BOOST_REQUIRE_MESSAGE(code == 0, "crit show -i files.img --pretty");
  auto fj = crpp::Json::Parse(fdinfo);
  auto pj = crpp::Json::Parse(files);
  BOOST_REQUIRE(fj.ok() && pj.ok());
  std::map<uint64_t, uint64_t> pipe_of_id;
  for (const crpp::Json& e : pj->Find("entries")->items()) {
    if (e.Find("type")->text() != "PIPE") continue;
    pipe_of_id[*e.Find("id")->AsUint64()] = *e.Find("pipe")->Find("pipe_id")->AsUint64();
  }
  std::map<int, uint64_t> out;
  for (const crpp::Json& e : fj->Find("entries")->items()) {
    uint64_t fd = *e.Find("fd")->AsUint64();
    if (fd <= 2 && e.Find("type")->text() == "PIPE")
      out[fd] = pipe_of_id[*e.Find("id")->AsUint64()];
  }
  BOOST_REQUIRE_EQUAL(out.size(), 3u);
  return out;
}

std::vector<std::string> InheritArgs(const std::map<int, uint64_t>& pipes) {
  std::vector<std::string> args;
  for (auto [fd, ino] : pipes) {
    args.push_back("--inherit-fd");
    args.push_back("fd[" + std::to_string(fd) + "]:pipe:[" + std::to_string(ino) + "]");
  }
  return args;
}

pid_t WaitForPidfile(const std::string& path) {
  for (int i = 0; i < 1000; ++i) {
    std::ifstream in(path);
    pid_t pid = 0;
    if (in >> pid && pid > 0) return pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

BOOST_AUTO_TEST_CASE(pdum_criu_command_lines) {
  const std::string prefix = TmpDir() + "/prefix";
  std::filesystem::remove_all(prefix);
  {
    int code = 0;
    Capture({crpp::e2e::Runfile("tools/install/install"), prefix}, &code);
    BOOST_REQUIRE_MESSAGE(code == 0, "bazel run //tools:install -- PREFIX");
  }
  const std::string bin = prefix + "/bin";
  const std::string goblin = crpp::e2e::Runfile("tests/e2e/programs/goblin");

  // The goblin, in a session of its own, on our pipes.
  Stdio first;
  const pid_t pid = Start({goblin}, first.task[0], first.task[1], first.task[2], true);
  first.CloseTaskEnds();
  BOOST_REQUIRE_EQUAL(first.Talk("hello"), "1:HELLO|count 1");

  const std::string dir = TmpDir() + "/images";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  // Callers keep their own files in the images directory: restore ignores them.
  std::ofstream(dir + "/pdum-metadata.json") << "{\"note\": \"not an image\"}\n";
  const pid_t dump = Start({bin + "/criu", "dump", "-D", dir, "-t", std::to_string(pid), "-o",
                            "dump.log", "-v4", "--shell-job", "--leave-running"});
  BOOST_REQUIRE_MESSAGE(Wait(dump) == 0, Slurp(dir + "/dump.log"));
  // Left running: the original answers on its own pipes.
  BOOST_TEST(first.Talk("original") == "2:ORIGINAL|count 2");

  // criu-ns restores a copy while the original holds the pid; criu-ns's own
  // stdio are the copy's new pipes (as under sudo -n -C N, nothing else).
  const auto pipes = StdioPipes(bin, dir);
  Stdio second;
  std::vector<std::string> restore = {
      bin + "/criu-ns", "restore",   "-D",         dir,          "-o",
      "restore.log",    "--pidfile", dir + "/pid", "--shell-job"};
  for (const std::string& a : InheritArgs(pipes)) restore.push_back(a);
  const pid_t criu_ns = Start(restore, second.task[0], second.task[1], second.task[2]);
  second.CloseTaskEnds();
  const pid_t copy = WaitForPidfile(dir + "/pid");
  BOOST_REQUIRE_MESSAGE(copy > 0, Slurp(dir + "/restore.log"));
  BOOST_TEST(copy != pid);  // the caller's view of the copy: another pid
  BOOST_TEST(second.Talk("copy") == "2:COPY|count 2");
  BOOST_TEST(first.Talk("still") == "3:STILL|count 3");
  // Restore without -d stays the parent of the tree: criu-ns runs on.
  BOOST_TEST(waitpid(criu_ns, nullptr, WNOHANG) == 0);

  // The copy, from outside its namespace: criu-ns dump -t (the pid we see).
  const std::string dir2 = TmpDir() + "/images2";
  std::filesystem::remove_all(dir2);
  std::filesystem::create_directories(dir2);
  const pid_t dump2 = Start({bin + "/criu-ns", "dump", "-D", dir2, "-t", std::to_string(copy), "-o",
                             "dump.log", "-v4", "--shell-job"});
  BOOST_REQUIRE_MESSAGE(Wait(dump2) == 0, Slurp(dir2 + "/dump.log"));
  // Killed by the dump: criu-ns restore ends with it.
  BOOST_TEST(Wait(criu_ns) == 128 + SIGKILL);

  // Restored detached: criu-ns returns once it runs, the pidfile holding
  // the pid we see.
  const auto pipes2 = StdioPipes(bin, dir2);
  Stdio third;
  std::vector<std::string> detached = {
      bin + "/criu-ns", "restore",   "-d",  "-D",         dir2, "-o",
      "restore.log",    "--pidfile", "pid", "--shell-job"};
  for (const std::string& a : InheritArgs(pipes2)) detached.push_back(a);
  const pid_t criu_ns2 = Start(detached, third.task[0], third.task[1], third.task[2]);
  third.CloseTaskEnds();
  BOOST_REQUIRE_MESSAGE(Wait(criu_ns2) == 0, Slurp(dir2 + "/restore.log"));
  std::ifstream in(dir2 + "/pid");
  pid_t copy2 = 0;
  BOOST_REQUIRE(in >> copy2);
  BOOST_TEST(std::filesystem::exists("/proc/" + std::to_string(copy2)));
  BOOST_TEST(third.Talk("again") == "3:AGAIN|count 3");

  // The end of their input ends both goblins.
  close(third.caller[0]);
  third.caller[0] = open("/dev/null", O_RDONLY);
  close(first.caller[0]);
  first.caller[0] = open("/dev/null", O_RDONLY);
  BOOST_TEST(Wait(pid) == 0);
  for (int i = 0; i < 500 && std::filesystem::exists("/proc/" + std::to_string(copy2)); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (std::filesystem::exists("/proc/" + std::to_string(copy2))) {
    kill(copy2, SIGKILL);
    BOOST_FAIL("the detached copy did not end at the end of its input");
  }
}

}  // namespace
